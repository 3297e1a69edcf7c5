"""`peninsula profiles`: list the named profiles `peninsula run --profile` takes."""

from __future__ import annotations

import sys

from peninsula.cli.registry import summary


def register(sub) -> None:
    cmd = sub.add_parser(
        "profiles",
        help=summary("profiles"),
        description="List the named profiles: yours in ~/.config/peninsula/profiles first "
        "(they shadow shipped ones of the same name), then the shipped ones.",
    )
    cmd.add_argument("--verbose", "-v", action="store_true", help="also show each profile's file and what it allows")
    cmd.set_defaults(handler=main)


def main(args) -> int:
    from peninsula.config.options import ConfigError, list_profiles, load_options

    profiles = list_profiles()
    if not profiles:
        print("no profiles found")
        return 0
    width = max(len(name) for name, _, _ in profiles)
    for name, path, description in profiles:
        print(f"{name:<{width}}  {description or '(no description)'}")
        if args.verbose:
            print(f"{'':<{width}}  file: {path}")
            try:
                options = load_options(path)
            except ConfigError as err:
                print(f"{'':<{width}}  error: {err}", file=sys.stderr)
                continue
            for root in options.write:
                print(f"{'':<{width}}  writes: {root}")
            for pattern in options.protect:
                print(f"{'':<{width}}  protects: {pattern}")
    return 0
