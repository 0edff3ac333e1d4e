"""Field paths of Kubernetes CRDs, to check that shipped manifests name only real fields.

A path is dotted, ``[]`` for list items, ``*`` for a map's keys and ``**`` below a field that
keeps unknown fields (``x-kubernetes-preserve-unknown-fields``). The lists in
``crd_fields/`` were extracted from the tools' own CRD files (first lines say from where;
``kubernetes-*`` list the core fields used, from the Kubernetes API reference, and
``@include LIST PREFIX`` reuses another list's paths) with::

    python -m tests.deploy.crd CRD.yaml KIND [--omit PATH_PREFIX ...] > crd_fields/NAME.txt
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml

FIELDS = Path(__file__).parent / "crd_fields"
OBJECT_META = ("metadata", "metadata.name", "metadata.namespace", "metadata.labels",
               "metadata.labels.*", "metadata.annotations", "metadata.annotations.*")


def schema_paths(schema: Mapping[str, Any], prefix: str = "") -> Iterator[str]:
    """Every field path an OpenAPI v3 (structural) schema allows."""
    if schema.get("x-kubernetes-preserve-unknown-fields"):
        yield f"{prefix}.**" if prefix else "**"
    for name, sub in (schema.get("properties") or {}).items():
        path = f"{prefix}.{name}" if prefix else name
        yield path
        yield from schema_paths(sub, path)
    if isinstance(schema.get("items"), Mapping):
        yield from schema_paths(schema["items"], f"{prefix}[]")
    if isinstance(schema.get("additionalProperties"), Mapping):
        yield f"{prefix}.*"
        yield from schema_paths(schema["additionalProperties"], f"{prefix}.*")
    for key in ("allOf", "anyOf", "oneOf"):
        for sub in schema.get(key) or ():
            yield from schema_paths(sub, prefix)


def manifest_paths(value: Any, prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    """Every field path a manifest (parsed YAML) uses, as segments (a key may hold dots)."""
    if isinstance(value, Mapping):
        for key, sub in value.items():
            path = (*prefix, str(key))
            yield path
            yield from manifest_paths(sub, path)
    elif isinstance(value, list) and prefix:
        for item in value:
            yield from manifest_paths(item, (*prefix[:-1], f"{prefix[-1]}[]"))


Trie = dict[str, "Trie"]


def load_fields(name: str) -> Trie:
    """The field paths of ``crd_fields/NAME.txt`` (plus standard ObjectMeta) as a trie."""
    lines = (FIELDS / f"{name}.txt").read_text().splitlines()
    for line in [line for line in lines if line.startswith("@include ")]:
        _, other, prefix = line.split()
        lines += [f for f in (FIELDS / f"{other}.txt").read_text().splitlines()
                  if f.startswith(prefix)]
    trie: Trie = {}
    for line in [*lines, *OBJECT_META]:
        if line and not line.startswith(("#", "@")):
            node = trie
            for segment in line.split("."):
                node = node.setdefault(segment, {})
    return trie


def allowed(path: tuple[str, ...], node: Trie) -> bool:
    """Whether ``path`` is a field: listed, a map's key (``*``), or below ``**``."""
    if "**" in node:
        return True
    if not path:
        return True
    head, rest = path[0], path[1:]
    options = [head, "*[]" if head.endswith("[]") else "*"]
    return any(option in node and allowed(rest, node[option]) for option in options)


def unknown_fields(manifest: Mapping[str, Any], fields: Trie) -> list[str]:
    """The manifest's field paths that the CRD does not have."""
    return [".".join(p) for p in manifest_paths(manifest) if not allowed(p, fields)]


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("crd")
    parser.add_argument("kind")
    parser.add_argument("--omit", action="append", default=[])
    parser.add_argument("--source", default="")
    args = parser.parse_args(argv)
    for document in yaml.safe_load_all(Path(args.crd).read_text()):
        if not document or document["spec"]["names"]["kind"] != args.kind:
            continue
        for version in document["spec"]["versions"]:
            paths = sorted(set(schema_paths(version["schema"]["openAPIV3Schema"])))
            kept = [p for p in paths if not any(p.startswith(o) for o in args.omit)]
            print(f"# {document['spec']['group']}/{version['name']} {args.kind}: {args.source}")
            if args.omit:
                print(f"# omitted (unused here): {', '.join(args.omit)}")
            print("\n".join(kept))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
