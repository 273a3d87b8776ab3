"""Finding the interactive elements in the blocks the bot posted."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any


def iter_elements(
    blocks: Sequence[Mapping[str, Any]],
) -> Iterator[tuple[str | None, Mapping[str, Any]]]:
    """Every interactive element of a message with its block id."""
    for block in blocks:
        block_id = block.get("block_id")
        if block.get("type") == "actions":
            for element in block.get("elements", []):
                yield block_id, element
        elif isinstance(block.get("accessory"), Mapping):
            yield block_id, block["accessory"]


def find_element(
    blocks: Sequence[Mapping[str, Any]], action_id: str, value: str | None = None
) -> tuple[str | None, Mapping[str, Any]]:
    """The (block id, element) with ``action_id``; for a select, one offering ``value``.

    Raises:
        LookupError: Nothing matches.
    """
    for block_id, element in iter_elements(blocks):
        if element.get("action_id") != action_id:
            continue
        if value is None or element.get("value") == value:
            return block_id, element
        if any(o.get("value") == value for o in element.get("options", [])):
            return block_id, element
    raise LookupError(f"no element {action_id!r} (value {value!r}) in the blocks")
