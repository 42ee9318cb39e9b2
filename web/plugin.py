"""The web plugin: ``inbox user add|list|disable`` (accounts of the agents' inbox)."""

from __future__ import annotations

import argparse
import getpass
import sys
from typing import Any

from web.auth import ROLES, create_user, normalize_email


def _read_password(args: argparse.Namespace) -> str:
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    first = getpass.getpass("Contraseña: ")
    if first != getpass.getpass("Repita la contraseña: "):
        raise ValueError("the passwords do not match")
    return first


async def _user_add(rt: Any, args: argparse.Namespace) -> int:
    try:
        password = _read_password(args)
        queues = [q.strip() for q in (args.queues or "").split(",") if q.strip()] if args.queues is not None else None
        doc = await create_user(rt.store, args.email, args.role, password, name=args.name, queues=queues,
                                capacity=args.capacity)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"user {doc['email']} ({doc['role']}) saved")
    return 0


async def _user_list(rt: Any, args: argparse.Namespace) -> int:
    for email, doc in await rt.store.list_docs("users"):
        state = "" if doc.get("active", True) else " (disabled)"
        print(f"{email:40} {doc.get('role', ''):11} {doc.get('name', '')}{state}  queues: "
              f"{', '.join(doc.get('queues', [])) or '-'}")
    return 0


async def _user_disable(rt: Any, args: argparse.Namespace) -> int:
    email = normalize_email(args.email)
    doc = await rt.store.get_doc("users", email)
    if doc is None:
        print(f"error: no user {email}", file=sys.stderr)
        return 1
    await rt.store.put_doc("users", email, {**doc, "active": False})
    print(f"user {email} disabled")
    return 0


def register_cli(sub: Any, common: argparse.ArgumentParser, with_runtime: Any) -> None:
    p = sub.add_parser("user", parents=[common], help="accounts of the agents' web inbox")
    usub = p.add_subparsers(dest="user_command", required=True)
    a = usub.add_parser("add", parents=[common], help="create or update a user (sets a new password)")
    a.add_argument("email")
    a.add_argument("--role", required=True, choices=ROLES)
    a.add_argument("--name")
    a.add_argument("--queues", help="comma-separated queues (organismos) the user serves")
    a.add_argument("--capacity", type=int, default=10)
    a.add_argument("--password-stdin", action="store_true", help="read the password from the first line of stdin")
    a.set_defaults(func=with_runtime(_user_add))
    ls = usub.add_parser("list", parents=[common], help="list users")
    ls.set_defaults(func=with_runtime(_user_list))
    d = usub.add_parser("disable", parents=[common], help="disable a user (sessions stop at once)")
    d.add_argument("email")
    d.set_defaults(func=with_runtime(_user_disable))
