"""Who sent a request and which conversation it continues, without keeping secrets.

The tenant is a keyed digest of the API key: state is namespaced by it, logs and
the ledger carry it, and the key itself never leaves this module.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

ANONYMOUS = "anonymous"
CONVERSATION_HEADER = "x-tokenopt-conversation"
TASK_HEADER = "x-tokenopt-task"
# A label the client gives its tenant (team, app) for policy rules. It only selects
# rules: state is always namespaced by the key digest, which a client cannot forge.
TENANT_HEADER = "x-tokenopt-tenant"


def tenant_of(headers: Mapping[str, str]) -> str:
    """A stable, irreversible id for the credential a request carries."""
    key = headers.get("x-api-key") or headers.get("api-key") or ""
    if not key:
        auth = headers.get("authorization", "")
        scheme, _, token = auth.partition(" ")
        key = token.strip() if scheme.lower() == "bearer" else auth
    if not key:
        return ANONYMOUS
    digest = hashlib.blake2b(key.encode(), digest_size=12, person=b"tokenopt-tenant")
    return "t_" + digest.hexdigest()


def conversation_of(
    headers: Mapping[str, str], tenant: str, system: str, first_message: Any
) -> str:
    """The client's conversation id, or one inferred from how the conversation began.

    Turns of one conversation share their system text and first message, so a
    digest of those (scoped to the tenant) groups them without any client help.
    """
    given = headers.get(CONVERSATION_HEADER)
    if given:
        return given
    opening = json.dumps([tenant, system, first_message], sort_keys=True, default=str)
    return "c_" + hashlib.blake2b(opening.encode(), digest_size=10).hexdigest()
