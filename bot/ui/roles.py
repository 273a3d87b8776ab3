"""Texts of ``/bertbot roles``: the usage, a workspace's roles, and what a change did.

Pure functions of service values; user ids are rendered as mentions, never trusted text.
"""

from __future__ import annotations

from bot.services.workspace_roles import RoleChange, RoleListing

USAGE = (
    "Usage: `/bertbot roles list`, `/bertbot roles add @user moderator|admin`, "
    "`/bertbot roles remove @user moderator|admin` (admins of this workspace)."
)


def listing_text(listing: RoleListing) -> str:
    """A workspace's roles, admins first, saying where they come from."""
    if listing.source == "database":
        head = "Roles in this workspace (managed with `/bertbot roles`):"
    else:
        head = (
            "Roles in this workspace come from the environment "
            "(`BERTBOT_ADMINS`, `BERTBOT_MODERATORS`) until one is added here:"
        )
    lines = [head]
    for role in ("admin", "moderator"):
        users = [f"<@{e.user_id}>" for e in listing.entries if e.role == role]
        lines.append(f"• {role}s: {', '.join(users) if users else 'none'}")
    return "\n".join(lines)


def change_text(change: RoleChange) -> str:
    """What a grant or removal did, for the admin who asked."""
    who = f"<@{change.user_id}>"
    if change.action == "add":
        text = (
            f":white_check_mark: {who} is now a {change.role} in this workspace."
            if change.changed
            else f":information_source: {who} was already a {change.role} here."
        )
    else:
        text = (
            f":white_check_mark: {who} is no longer a {change.role} in this workspace."
            if change.changed
            else f":information_source: {who} was not a {change.role} here; nothing changed."
        )
    if change.also_granted:
        text += (
            f"\n:information_source: These are this workspace's first stored roles, so the "
            f"environment's roles no longer apply here: <@{change.by}> was stored as an admin too."
        )
    return text
