"""What tells a restart of openbao.service apart (its main PID, when it last became active) and what its API
says now, as one JSON object."""

import json
import subprocess
import urllib.request


def show(prop):
    return subprocess.run(["systemctl", "show", "-p", prop, "--value", "openbao.service"], capture_output=True,
                          text=True, check=True).stdout.strip()


try:
    url = "http://127.0.0.1:8200/v1/sys/health?standbyok=true&sealedcode=200&uninitcode=200"
    with urllib.request.urlopen(url, timeout=3) as answer:
        health = json.load(answer)
except Exception as exc:  # pylint: disable=broad-except  # reported, not raised
    health = {"error": str(exc)}
dropin = "/etc/systemd/system/openbao.service.d/00-no-swap.conf"
print(json.dumps({"pid": int(show("MainPID")), "active_since": show("ActiveEnterTimestamp"),
                  "active_since_us": int(show("ActiveEnterTimestampMonotonic")), "health": health,
                  "dropin": subprocess.run(["test", "-e", dropin], check=False).returncode == 0}))
