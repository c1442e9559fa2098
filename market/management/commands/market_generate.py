"""`manage.py market_generate NAME [--config FILE] [--seed N] [--booths N] ... [--dry-run]`"""

import json
import secrets
import sys
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction

from market.management.accounts import user_named
from market.maps import CHECK_MARKET_ID, MarketGenerateError, market_config_checked, market_generate
from zones.core.mapgen import ARRANGEMENTS, PROP_SETS, MapConfig, canonical, generate, layout_hash


def portal_option(text: str) -> dict[str, Any]:
    """SIDE[:AT[:TARGET]], e.g. north, east:250, west:500:2."""
    parts = text.split(":")
    if not 1 <= len(parts) <= 3 or not parts[0]:
        raise ValueError(text)
    portal: dict[str, Any] = {"side": parts[0]}
    if len(parts) > 1 and parts[1]:
        portal["at"] = int(parts[1])
    if len(parts) > 2 and parts[2]:
        portal["target"] = int(parts[2])
    return portal


class Command(BaseCommand):
    help = (
        "Create a market generated from a map config (docs/mapgen.md): its booths, one zone"
        " each, walls, aisles, props, the items NPCs use, NPC spawn points and portals. The"
        " config comes from --config (a JSON file, or - for standard input) and the options,"
        " which override it; without --seed a random seed is drawn and printed. --dry-run"
        " checks and describes the market without creating it; --print writes the layout's"
        " canonical JSON."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name", help="the new market's name")
        parser.add_argument("--slug", default="", help="its slug (default: from the name)")
        parser.add_argument("--config", help="a JSON map config, without market_id (- for stdin)")
        parser.add_argument("--seed", type=int, help="0 to 4294967295 (default: random)")
        parser.add_argument("--instance", type=int, dest="instance_id", help="instance id")
        parser.add_argument("--booths", type=int, help="1 to 32")
        parser.add_argument("--arrangement", choices=ARRANGEMENTS)
        parser.add_argument(
            "--bounds", type=int, nargs=2, metavar=("X", "Z"), help="width and depth, metres"
        )
        parser.add_argument(
            "--props", help=f"comma-separated prop sets, of {', '.join(sorted(PROP_SETS))}"
        )
        parser.add_argument("--items", type=int, dest="item_density", help="per 10,000 m²")
        parser.add_argument("--npcs", type=int, dest="npc_density", help="per 10,000 m²")
        parser.add_argument(
            "--portal",
            action="append",
            default=None,
            help="SIDE[:AT[:TARGET]]: a portal on the side's outer aisle, AT per mille along"
            " it, leading to market TARGET; repeat for more",
        )
        parser.add_argument("--operator", help="a user who will operate the new market")
        parser.add_argument("--password", help="create the operator with this password")
        parser.add_argument("--dry-run", action="store_true", help="check and describe only")
        parser.add_argument(
            "--print", action="store_true", dest="print_layout", help="write the canonical JSON"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        config = self.config(options)
        try:
            market_config_checked(config)
        except MarketGenerateError as error:
            raise CommandError(f"Bad map config: {error}") from None
        if options["dry_run"]:
            layout = generate(MapConfig.from_dict({**config, "market_id": CHECK_MARKET_ID}))
            self.describe(layout, layout_hash(layout), "would be")
            if options["print_layout"]:
                self.stdout.write(canonical(layout).decode("ascii"))
            return
        with transaction.atomic():
            operator = None
            if options["operator"]:
                operator = user_named(options["operator"], options["password"])
            try:
                made = market_generate(
                    name=options["name"], slug=options["slug"], config=config, operator=operator
                )
            except MarketGenerateError as error:
                raise CommandError(str(error)) from None
        market = made.market
        self.stdout.write(f"Created {market.name} (market {market.pk}, slug {market.slug}).")
        self.describe(made.layout, made.sha256, "is")
        if operator is not None:
            self.stdout.write(f"{options['operator']} operates it.")
        if options["print_layout"]:
            self.stdout.write(canonical(made.layout).decode("ascii"))

    def config(self, options: dict[str, Any]) -> dict[str, Any]:
        config: dict[str, Any] = {}
        if options["config"]:
            try:
                source = (
                    sys.stdin.read()
                    if options["config"] == "-"
                    else Path(options["config"]).read_text()
                )
                config = json.loads(source)
            except (OSError, ValueError) as error:
                raise CommandError(f"Cannot read the config {options['config']}: {error}") from None
            if not isinstance(config, dict):
                raise CommandError("Bad map config: a map config is a JSON object")
        for key in ("seed", "instance_id", "booths", "arrangement", "item_density", "npc_density"):
            if options[key] is not None:
                config[key] = options[key]
        if options["bounds"]:
            config["bounds_m"] = list(options["bounds"])
        if options["props"]:
            config["prop_sets"] = [name.strip() for name in options["props"].split(",")]
        if options["portal"]:
            try:
                config["portals"] = [portal_option(text) for text in options["portal"]]
            except ValueError as error:
                raise CommandError(f"--portal takes SIDE[:AT[:TARGET]], not {error}") from None
        if "seed" not in config:
            config["seed"] = secrets.randbelow(1 << 32)
        return config

    def describe(self, layout: dict[str, Any], sha256: str, verb: str) -> None:
        config = layout["config"]
        self.stdout.write(
            f"Seed {config['seed']}: {len(layout['booths'])} booths ({config['arrangement']}),"
            f" {len(layout['walls'])} walls, {len(layout['props'])} props,"
            f" {len(layout['items'])} items, {len(layout['npc_spawns'])} NPC spawn points,"
            f" {len(layout['portals'])} portals, {len(layout['colliders'])} colliders;"
            f" {config['bounds_m'][0]} x {config['bounds_m'][1]} m."
        )
        self.stdout.write(f"The layout {verb} sha256 {sha256}.")
