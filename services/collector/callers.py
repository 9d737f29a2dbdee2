"""Who is calling: the verified caller (``qingfeng.rpc.current_caller``) and the roles the collector checks.

The collector believes only a credential its trust file verifies (the gateway's, or an internal identity such as
``ops-import``); ``x-qingfeng-*`` metadata is never read. The one interceptor that checks it lives in
``qingfeng.rpc.auth``.
"""

from __future__ import annotations

from typing import Final

from qingfeng.rpc import Caller, current_caller

__all__ = ["SEE_SUBMITTER", "Caller", "current_caller"]

# The role that may read who submitted a tip.
SEE_SUBMITTER: Final = "see_submitter"
