"""ansible-test's pip bootstrap for its sanity test environments, from PyPI alone.

ansible-test creates each sanity test's virtual environment without pip, then runs
``~/.ansible/test/cache/get_pip_<version>.py`` in it (``<version>`` with underscores), which it
downloads from ci-files.testing.ansible.com when it is not there. That host is out of reach where
only package registries are, so ``make deps`` copies this script there, beside pip's own wheel
from PyPI (``pip download pip==<version>``). Like get-pip.py it installs what it is asked for
(``pip==<version>``) with pip run from that wheel, dropping get-pip's own ``--no-setuptools`` and
``--no-wheel`` options, which pip does not know.
"""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
VERSION = os.path.splitext(os.path.basename(__file__))[0].replace('get_pip_', '', 1).replace('_', '.')
GET_PIP_ONLY = ('--no-setuptools', '--no-wheel')


def main():
    """Install the packages named on the command line with pip from the wheel beside this script."""
    wheel = os.path.join(HERE, 'pip-%s-py3-none-any.whl' % VERSION)
    if not os.path.isfile(wheel):
        sys.exit('%s is missing: run make deps (pip download --no-deps -d %s pip==%s)' % (wheel, HERE, VERSION))
    sys.path.insert(0, wheel)
    from pip._internal.cli.main import main as pip_main  # pylint: disable=import-outside-toplevel,import-error

    args = [arg for arg in sys.argv[1:] if arg not in GET_PIP_ONLY]
    return pip_main(['install', '--upgrade', '--force-reinstall', '--find-links', HERE] + args)


if __name__ == '__main__':
    sys.exit(main())
