"""JSON schemas for kubeconform, made offline from what the install script downloaded.

    python schemas.py kubernetes SWAGGER_JSON OUT_DIR   built-in kinds: OUT_DIR/{kind}-{group}-{version}.json
    python schemas.py crds OUT_DIR CRD_FILE...          custom resources: OUT_DIR/{group}/{kind}_{version}.json

The file names are those kubeconform's schema-location templates ask for (lower case; a built-in
kind's group is its first label: `networking.k8s.io` → `networking`, none for the core group).
Every schema is strict: an object that lists its properties takes no other (as the API server
prunes or rejects them), so a misspelt field in the chart fails validation instead of vanishing.
"""

import json
import sys
from pathlib import Path
from typing import Any

import yaml

INT_OR_STRING = {"oneOf": [{"type": "string"}, {"type": "integer"}]}
# A quantity (`cpu: 1`, `memory: 512Mi`) is written as a number or a string.
QUANTITY = {"oneOf": [{"type": "string"}, {"type": "number"}]}


def strict(schema: Any) -> Any:
    """A copy of a schema where objects with properties forbid others, and OpenAPI's extensions
    (int-or-string, nullable) are spelt in JSON Schema. Walks only the keywords that hold schemas:
    a property may well be called `properties` or `format`."""
    if not isinstance(schema, dict):
        return schema
    if schema.get("x-kubernetes-int-or-string") or schema.get("format") == "int-or-string":
        return {"description": schema.get("description", ""), **INT_OR_STRING}
    out = dict(schema)
    for key in ("properties", "patternProperties"):
        if key in out:
            out[key] = {name: strict(sub) for name, sub in out[key].items()}
    for key in ("items", "additionalProperties", "not"):
        if isinstance(out.get(key), dict):
            out[key] = strict(out[key])
        elif isinstance(out.get(key), list):
            out[key] = [strict(sub) for sub in out[key]]
    for key in ("allOf", "anyOf", "oneOf"):
        if key in out:
            out[key] = [strict(sub) for sub in out[key]]
    if "properties" in out and "additionalProperties" not in out \
            and not out.get("x-kubernetes-preserve-unknown-fields"):
        out["additionalProperties"] = False
    if out.pop("nullable", False) and isinstance(out.get("type"), str):
        out["type"] = [out["type"], "null"]
    return out


def pin_kind(schema: dict[str, Any], api_version: str, kind: str) -> dict[str, Any]:
    properties = schema.setdefault("properties", {})
    properties["apiVersion"] = {"type": "string", "enum": [api_version]}
    properties["kind"] = {"type": "string", "enum": [kind]}
    return schema


def referenced(name: str, definitions: dict[str, Any]) -> set[str]:
    """The definitions `name` needs, itself included."""
    seen, todo = set(), [name]
    while todo:
        current = todo.pop()
        if current in seen:
            continue
        seen.add(current)
        todo += refs(definitions[current])
    return seen


def refs(node: Any) -> list[str]:
    if isinstance(node, list):
        return [r for item in node for r in refs(item)]
    if not isinstance(node, dict):
        return []
    ref = node.get("$ref")  # a string; JSONSchemaProps also has a property of that name
    found = [ref.removeprefix("#/definitions/")] if isinstance(ref, str) else []
    return found + [r for value in node.values() for r in refs(value)]


def kubernetes(swagger: Path, out: Path) -> int:
    definitions = json.loads(swagger.read_text())["definitions"]
    definitions["io.k8s.apimachinery.pkg.util.intstr.IntOrString"] = INT_OR_STRING
    definitions["io.k8s.apimachinery.pkg.api.resource.Quantity"] = QUANTITY
    out.mkdir(parents=True, exist_ok=True)
    written = 0
    for name, definition in definitions.items():
        for gvk in definition.get("x-kubernetes-group-version-kind", []):
            group, version, kind = gvk["group"], gvk["version"], gvk["kind"]
            api_version = f"{group}/{version}" if group else version
            suffix = f"-{group.split('.')[0]}-{version}" if group else f"-{version}"
            schema = pin_kind(strict(definition), api_version, kind)
            # Self-contained: the definitions it refers to travel with it, refs unchanged.
            schema["definitions"] = {n: strict(definitions[n]) for n in referenced(name, definitions) if n != name}
            (out / f"{kind}{suffix}.json".lower()).write_text(json.dumps(schema))
            written += 1
    return written


class CrdLoader(yaml.SafeLoader):
    """YAML 1.1 reads a bare `=` (a relabelling action in prometheus-operator's enums) as the
    obsolete `value` type, which PyYAML cannot build: it is the string "="."""


CrdLoader.add_constructor("tag:yaml.org,2002:value", lambda loader, node: loader.construct_scalar(node))


def crds(out: Path, files: list[Path]) -> int:
    written = 0
    for path in files:
        for doc in yaml.load_all(path.read_text(), Loader=CrdLoader):
            if not doc or doc.get("kind") != "CustomResourceDefinition":
                continue
            group, kind = doc["spec"]["group"], doc["spec"]["names"]["kind"]
            for version in doc["spec"]["versions"]:
                if not version.get("served", True):
                    continue
                schema = pin_kind(strict(version["schema"]["openAPIV3Schema"]), f"{group}/{version['name']}", kind)
                target = out / group / f"{kind}_{version['name']}.json".lower()
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(json.dumps(schema))
                written += 1
    return written


if __name__ == "__main__":
    match sys.argv[1:]:
        case ["kubernetes", swagger, out]:
            count = kubernetes(Path(swagger), Path(out))
        case ["crds", out, *files] if files:
            count = crds(Path(out), [Path(f) for f in files])
        case _:
            sys.exit(__doc__)
    print(f"{count} schemas written", file=sys.stderr)
