"""Run nginx in front of the web process on this machine (`make run PROXY=nginx`, the tests).

Fills the templates beside this file from the environment, as the nginx image does in
docker-compose.yml, into PROXY_RUN_DIR, then replaces itself with nginx in the foreground.
Standard library only: it runs before, and apart from, the project's virtualenv.
"""

import os
import shutil
import string
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEFAULTS = {
    "PROXY_LISTEN": "127.0.0.1:8000",
    "SEGMENT_UPSTREAM": "127.0.0.1:8001",
    "PROXY_MAX_BODY": "32m",
    "PROXY_CONNECTIONS_PER_ADDRESS": "256",
    "PROXY_WORKERS": "1",
    "PROXY_RUN_DIR": "",  # a folder of /tmp named by the listening port
}


def render(values):
    """Write segment.conf and nginx.conf into PROXY_RUN_DIR; return nginx.conf's path."""
    run_dir = Path(values["PROXY_RUN_DIR"])
    run_dir.mkdir(parents=True, exist_ok=True)
    # Started as root, nginx's workers run as nobody: they must reach the temporary folders
    # nginx makes in here (each 0700 and theirs).
    run_dir.chmod(0o755)
    for template, name in (("segment.conf.template", "segment.conf"), ("local.conf.template", "nginx.conf")):
        # safe_substitute: only our ${NAMES}; nginx's own $variables stay as they are.
        text = string.Template((HERE / template).read_text()).safe_substitute(values)
        (run_dir / name).write_text(text)
    return run_dir / "nginx.conf"


def main():
    nginx = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/usr/local/sbin")
    if nginx is None:
        sys.exit("nginx is not installed: `make setup` installs it where it may (apt-get nginx)")
    values = {name: os.environ.get(name) or default for name, default in DEFAULTS.items()}
    port = values["PROXY_LISTEN"].rpartition(":")[2]
    values["PROXY_RUN_DIR"] = values["PROXY_RUN_DIR"] or f"{tempfile.gettempdir()}/segment-nginx-{port}"
    config = render(values)
    os.execv(nginx, [nginx, "-p", values["PROXY_RUN_DIR"], "-c", str(config)])


if __name__ == "__main__":
    main()
