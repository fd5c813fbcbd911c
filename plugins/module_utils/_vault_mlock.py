# Copyright: vault_mlock.lxd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Note that this module util is **PRIVATE** to the collection. It can change at any time.

"""Whether a Vault server locks its memory (its ``disable_mlock``), decided from what is known of it.

``auto`` means no for integrated storage (raft: HashiCorp recommends ``disable_mlock = true``)
and for OpenBao's ``bao`` (OpenBao 2 and later never lock memory and refuse
``disable_mlock = false``), yes otherwise.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

SETTINGS = ("auto", "true", "false")
RAFT_STORAGE = ("raft", "integrated")
_OPENBAO_NAME = re.compile(r"(open)?bao")


class DecisionError(ValueError):
    """A disable_mlock setting that is none of auto, true, false."""


@dataclass(frozen=True)
class MlockDecision:
    enabled: bool  # Vault locks its memory
    reason: str
    binary: str
    openbao: bool


def is_openbao(binary: str, link_target: str = "") -> bool:
    """OpenBao's ``bao``, by the name it is called or the file a link resolves to: bao, openbao, bao-2.1 ..."""
    return any(_OPENBAO_NAME.match(os.path.basename(path)) for path in (binary, link_target) if path)


def decide_mlock(binary: str, link_target: str = "", disable_mlock="auto", storage: str = "") -> MlockDecision:
    """The decision for the Vault binary ``binary`` (``link_target``: what it links to, if a link)."""
    setting = str(disable_mlock).lower()
    if setting not in SETTINGS:
        raise DecisionError(f"disable_mlock: {disable_mlock!r} is not valid; expected one of {', '.join(SETTINGS)}")
    openbao = is_openbao(binary, link_target)
    raft = (storage or "").lower() in RAFT_STORAGE
    if setting != "auto":
        return MlockDecision(setting == "false", f"disable_mlock is set to {setting}", binary, openbao)
    if openbao:
        reason = "OpenBao (bao) 2 and later never lock memory and refuse disable_mlock = false"
    elif raft:
        reason = "integrated storage (raft): HashiCorp recommends disable_mlock = true"
    else:
        reason = f"Vault with {storage or 'its'} storage locks its memory (disable_mlock = false)"
    return MlockDecision(not openbao and not raft, reason, binary, openbao)
