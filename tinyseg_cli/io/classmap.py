"""Class maps: ``--classes a,b,c``, a ``classes.json``, a table, or a table's metadata (SPEC §2)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tinyseg_cli.errors import TinysegError
from tinyseg_cli.io.paths import not_a_file


@dataclass(frozen=True)
class ClassMap:
    """Ordered class names; the position of a name is its class index."""

    names: tuple[str, ...]

    def __post_init__(self) -> None:
        if not self.names:
            raise TinysegError("class map is empty")
        if len(set(self.names)) != len(self.names):
            raise TinysegError(f"class map has repeated names: {', '.join(self.names)}")

    def __len__(self) -> int:
        return len(self.names)

    @classmethod
    def numbered(cls, n_classes: int) -> ClassMap:
        """Names ``0``, ``1``, … for data that came without a class map."""
        return cls(tuple(str(i) for i in range(n_classes)))

    def name(self, index: int) -> str:
        """The name of class ``index`` (its number when the map is shorter)."""
        return self.names[index] if 0 <= index < len(self.names) else str(index)

    def index(self, name_or_index: str) -> int:
        """Class index for a name or a decimal index, as users write it in options."""
        if name_or_index in self.names:
            return self.names.index(name_or_index)
        if name_or_index.isdigit() and int(name_or_index) < len(self.names):
            return int(name_or_index)
        raise TinysegError(f"unknown class {name_or_index!r} (classes: {', '.join(self.names)})")

    def to_metadata(self) -> list[str]:
        return list(self.names)


def _from_json_value(value: Any, source: str) -> ClassMap:
    if isinstance(value, dict) and "classes" in value:
        value = value["classes"]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return ClassMap(tuple(value))
    if isinstance(value, dict):
        try:
            indexed = {int(k): str(v) for k, v in value.items()}
        except ValueError:
            raise TinysegError(f"{source}: class map keys must be class indices") from None
        if sorted(indexed) != list(range(len(indexed))):
            raise TinysegError(f"{source}: class indices must be 0..{len(indexed) - 1}")
        return ClassMap(tuple(indexed[i] for i in range(len(indexed))))
    raise TinysegError(f"{source}: expected a list of class names or an index -> name object")


def class_map_from_metadata(metadata: dict[str, Any]) -> ClassMap | None:
    """The class map stored in a table's ``tinyseg.classes`` metadata, if any."""
    value = metadata.get("classes")
    return None if value is None else _from_json_value(value, "table metadata")


def parse_class_map(spec: str) -> ClassMap:
    """``--classes``: comma-separated names, a JSON file, or a table with class columns."""
    path = Path(spec)
    if path.suffix.lower() == ".json":
        if not path.is_file():
            raise not_a_file(path)
        try:
            return _from_json_value(json.loads(path.read_text()), str(path))
        except json.JSONDecodeError as error:
            raise TinysegError(f"{path}: invalid JSON ({error.msg}, line {error.lineno})") from None
    from tinyseg_cli.io.tables import is_table_path, read_table, table_metadata

    if is_table_path(spec) and spec != "-":
        table = read_table(path)
        if {"class_index", "class_name"} <= set(table.column_names):
            pairs = dict(
                zip(table["class_index"].to_pylist(), table["class_name"].to_pylist(), strict=True)
            )
            return _from_json_value({str(k): v for k, v in pairs.items()}, str(path))
        found = class_map_from_metadata(table_metadata(table))
        if found is None:
            raise TinysegError(f"{path}: no class_index/class_name columns and no class map")
        return found
    names = tuple(name.strip() for name in spec.split(","))
    if any(not name for name in names):
        raise TinysegError(f"--classes {spec!r}: empty class name")
    return ClassMap(names)


def binary_class_map(class_map: ClassMap, index: int) -> ClassMap:
    """(rest, C) for one-vs-rest weights of class ``index``."""
    name = class_map.name(index)
    return ClassMap(("not rest" if name == "rest" else "rest", name))
