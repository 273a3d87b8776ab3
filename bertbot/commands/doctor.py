"""``bertbot doctor``: what is in place, what is missing, and the fix."""

from __future__ import annotations

import argparse

from bertbot.commands import add_command
from bertbot.settings import Settings
from storage.db import Database


def _doctor(args: argparse.Namespace, settings: Settings) -> int:
    from bertbot.doctor import run_checks

    database = Database.connect(settings.db_url)  # doctor creates nothing
    checks = run_checks(settings, database)
    width = max(len(check.name) for check in checks)
    for check in checks:
        mark = "ok  " if check.ok else "MISSING"
        print(f"{mark:7} {check.name:<{width}}  {check.detail}")
        if check.fix:
            print(f"{'':7} {'':<{width}}  fix: {check.fix}")
    failed = [check.name for check in checks if not check.ok]
    if failed:
        print(f"\n{len(failed)} problem(s): {', '.join(failed)}")
        return 1
    print("\neverything is in place")
    return 0


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    add_command(
        commands,
        "doctor",
        _doctor,
        "check settings, database, encoder, models and Slack credentials",
        "Check that everything needed to serve is in place; exit 1 and name the fix for "
        "each missing piece.",
    )
