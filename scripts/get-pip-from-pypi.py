"""Stands in for ansible-test's pip bootstrap script (get-pip-<version>.py), which ansible-test
downloads from ci-files.testing.ansible.com, a host CI cannot reach. Like get-pip.py it takes pip
install arguments (`pip==24.2 setuptools==... --no-setuptools --no-wheel`); it bootstraps pip with
the standard library's ensurepip, then installs the exact versions asked for from PyPI."""

import subprocess
import sys

args = [a for a in sys.argv[1:] if a not in ("--no-setuptools", "--no-wheel")]
subprocess.run([sys.executable, "-m", "ensurepip", "--default-pip"], check=True, stdout=subprocess.DEVNULL)
subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", *args], check=True)
