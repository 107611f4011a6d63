"""``trayagent login | logout``: storage and catalogue secrets into and out of the keyring."""

from __future__ import annotations

import argparse
import getpass
import sys

from ..config import Config
from ..errors import ConfigError
from ..paths import Paths
from ..secrets.store import delete_secret, set_secret, storage_service
from ..storage.redact import Redactor
from .common import EXIT_OK


def _storage_account(args: argparse.Namespace, cfg: Config) -> tuple[str, str]:
    user = args.user or cfg.storage.user
    if not cfg.storage.remote:
        raise ConfigError("[storage] remote is not set: the embedded local storage needs no login",
                          "Set [storage] remote and user in the configuration first.")
    if not user:
        raise ConfigError("no storage user", "Give --user NAME or set [storage] user.")
    return storage_service(cfg.storage.remote), user


def _stdin_secret(what: str) -> str:
    secret = sys.stdin.readline().strip()
    if not secret:
        raise ConfigError(f"empty {what} on stdin", f"Pipe the {what} into the command: `... | trayagent login`.")
    return secret


def _login_catalogue(args: argparse.Namespace, cfg: Config, redactor: Redactor) -> int:
    from ..catalogue.scicat.auth import login_catalogue

    password = token = None
    if args.token_stdin:
        token = _stdin_secret("token")
    elif args.password_stdin:
        password = _stdin_secret("password")
    elif not args.browser:
        if not sys.stdin.isatty():
            raise ConfigError("no terminal to ask for the password",
                              "Use --password-stdin, --token-stdin or --browser.")
        args.user = args.user or input(f"SciCat user at {cfg.catalogue.url}: ").strip()
        password = getpass.getpass(f"Password for {args.user}: ")
    if password is not None and not args.user:
        raise ConfigError("no SciCat user name", "Give --user NAME.")
    for secret in (password, token):
        if secret:
            redactor.add(secret)
    ident = login_catalogue(cfg, args.user, password=password, token=token, oidc=args.browser)
    print(f"logged in to {cfg.catalogue.url} as {ident.username} <{ident.email}>; "
          f"groups: {', '.join(ident.groups) or 'none'}")
    if password is not None:
        print("your password and token are kept in the OS keyring; the token is renewed automatically")
    else:
        print("your token is kept in the OS keyring; it lasts about an hour, then run `trayagent login` again")
    return EXIT_OK


def cmd_login(args: argparse.Namespace, cfg: Config, paths: Paths, redactor: Redactor) -> int:
    if args.what == "catalogue":
        return _login_catalogue(args, cfg, redactor)
    if args.token_stdin or args.browser:
        raise ConfigError("--token-stdin and --browser are for the catalogue", "Use --password-stdin for storage.")
    service, user = _storage_account(args, cfg)
    if args.password_stdin:
        secret = sys.stdin.readline().rstrip("\r\n")
    elif sys.stdin.isatty():
        secret = getpass.getpass(f"Password for {user} on {cfg.storage.remote}: ")
    else:
        raise ConfigError("no terminal to ask for the password", "Use --password-stdin.")
    if not secret:
        raise ConfigError("empty password", "Give the storage password on stdin.")
    set_secret(service, user, secret)
    print(f"stored the storage password of {user} in the OS keyring")
    return EXIT_OK


def cmd_logout(args: argparse.Namespace, cfg: Config, paths: Paths, redactor: Redactor) -> int:
    if args.what == "catalogue":
        from ..catalogue.scicat.auth import logout_catalogue

        removed = logout_catalogue(cfg, args.user)
        print("logged out of SciCat; the stored password and token are gone" if removed
              else "not logged in to SciCat: nothing to remove")
        return EXIT_OK
    service, user = _storage_account(args, cfg)
    removed = delete_secret(service, user)
    print(f"removed the storage password of {user}" if removed else f"no stored password for {user}")
    return EXIT_OK
