"""Writes the API server refused (a validating webhook or policy, a quota, a name another owner holds): how they
are told in the cluster's status, and when to try again. Pure."""

from __future__ import annotations

from vmray_operator.reconcile.plan import Kind

MESSAGE_LIMIT = 300  # of the server's words per refusal: enough to name the rule, short enough for a condition
FIRST_RETRY = 2.0
LAST_RETRY = 60.0


def refusal(kind: Kind, name: str, message: str) -> str:
    """'Kind name: the server's words', on one line."""
    shown = "Secret" if kind is Kind.TOKEN_SECRET else kind.value
    words = " ".join(message.split())
    if len(words) > MESSAGE_LIMIT:
        words = words[: MESSAGE_LIMIT - 3] + "..."
    return f"{shown} {name}: {words}"


def retry_after(attempts: int) -> float:
    """Seconds until a refused write is tried again, after `attempts` refusals in a row: doubling, bounded."""
    return float(min(LAST_RETRY, FIRST_RETRY * 2 ** max(0, attempts - 1)))
