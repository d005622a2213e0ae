"""Checks of where a run is reported and published (`distill.report_to`, `distill.push_to_hub`): tracker names
transformers knows, repo ids the Hub accepts. Imports transformers only when a tracker is named."""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache
from typing import Annotated

from pydantic import AfterValidator, BeforeValidator


@lru_cache(maxsize=1)
def known_trackers() -> tuple[str, ...]:
    """The `report_to` names the installed transformers' Trainer accepts (its integrations)."""
    from transformers.integrations.integration_utils import INTEGRATION_TO_CALLBACK

    return tuple(INTEGRATION_TO_CALLBACK)


def check_report_to(names: str | Iterable[str] | None) -> tuple[str, ...]:
    """The tracker names, in order and without repeats; a single name may be given as a string. A name
    transformers does not know is an error naming it and the ones it knows."""
    if names is None:
        return ()
    names = tuple(dict.fromkeys((names,) if isinstance(names, str) else names))
    if not names:
        return ()
    known = known_trackers()
    unknown = [name for name in names if name not in known]
    if unknown:
        raise ValueError(
            f"unknown tracker {', '.join(map(repr, unknown))}; transformers knows {', '.join(sorted(known))} "
            "(leave distill.report_to empty to report to none)"
        )
    return names


def check_hub_repo(template: str | None) -> str | None:
    """A Hub repo id, `owner/name`, in which `{round}` may stand for the round's number."""
    if template is None:
        return None
    try:
        repo = template.format(round=1)
    except (KeyError, IndexError, ValueError) as exc:
        raise ValueError(
            f"{template!r}: only {{round}} may be filled in ({type(exc).__name__}: {exc})"
        ) from None
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

    try:
        validate_repo_id(repo)
    except HFValidationError as exc:
        raise ValueError(
            f"{template!r} is not a Hub repo id: write owner/name, e.g. me/sdfb-round{{round}} ({exc})"
        ) from None
    return template


# The field types of `distill.report_to` and `distill.push_to_hub`, checked when a config is built.
Trackers = Annotated[tuple[str, ...], BeforeValidator(check_report_to)]
HubRepo = Annotated[str | None, AfterValidator(check_hub_repo)]
