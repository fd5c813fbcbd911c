"""ansible-test's pip bootstrap, for machines that reach the package index but not its download host.

ansible-test runs this as __main__ in a new virtual environment without pip, with pip's
install arguments (for example ``pip==24.2 --no-setuptools``). It installs the pip wheel that
ships inside the interpreter (ensurepip), then lets that pip install what was asked for.
"""

import subprocess
import sys

BOOTSTRAP_ONLY = ("--no-setuptools", "--no-wheel")

subprocess.check_call([sys.executable, "-m", "ensurepip", "--default-pip"], stdout=subprocess.DEVNULL)
subprocess.check_call(
    [sys.executable, "-m", "pip", "install", "-q", *[arg for arg in sys.argv[1:] if arg not in BOOTSTRAP_ONLY]]
)
