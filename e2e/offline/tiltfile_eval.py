"""Evaluates the Tiltfile with starlark-rust and recording stand-ins for Tilt's builtins.

Only the builtins the Tiltfile uses are provided; an unknown one makes evaluation fail,
so the Tiltfile cannot drift into APIs these checks do not understand.
"""

from dataclasses import dataclass, field
from pathlib import Path

import starlark as sl
import yaml

ROOT = Path(__file__).resolve().parents[2]


class TiltfileFailed(Exception):
    """The Tiltfile called fail()."""


@dataclass
class Recording:
    context: str
    subcommand: str
    images: list = field(default_factory=list)          # docker_build calls
    yaml_files: list = field(default_factory=list)      # paths given to k8s_yaml
    objects: list = field(default_factory=list)         # parsed Kubernetes objects
    resources: dict = field(default_factory=dict)       # k8s_resource name -> kwargs
    local_resources: dict = field(default_factory=dict)  # local_resource name -> kwargs
    settings: dict = field(default_factory=dict)


def evaluate(context: str = "kind-echo-tracing", subcommand: str = "up") -> Recording:
    rec = Recording(context=context, subcommand=subcommand)
    module = sl.Module()

    def resolve(path):
        p = Path(path)
        return p if p.is_absolute() else ROOT / p

    def k8s_context():
        return context

    failures = []

    def fail(message):
        failures.append(message)
        raise TiltfileFailed(message)

    def update_settings(**kwargs):
        rec.settings.update(kwargs)

    def docker_build(ref, context_dir, **kwargs):
        rec.images.append({"ref": ref, "context": context_dir, **kwargs})

    def k8s_yaml(paths):
        for path in [paths] if isinstance(paths, str) else list(paths):
            full = resolve(path)
            rec.yaml_files.append(full)
            rec.objects.extend(d for d in yaml.safe_load_all(full.read_text()) if d)

    def k8s_resource(workload="", **kwargs):
        name = kwargs.get("new_name") or workload
        rec.resources[name] = {"workload": workload, **kwargs}

    def local_resource(name, **kwargs):
        rec.local_resources[name] = kwargs

    def listdir(path):
        return [str(p) for p in sorted(resolve(path).iterdir()) if p.is_file()]

    def link(url, name=""):
        return {"url": url, "name": name}

    for fn in (k8s_context, fail, update_settings, docker_build, k8s_yaml, k8s_resource,
               local_resource, listdir, link):
        module.add_callable(fn.__name__, fn)

    prelude = (
        "TRIGGER_MODE_MANUAL = 'manual'\n"
        "TRIGGER_MODE_AUTO = 'auto'\n"
        f"config = struct(tilt_subcommand = {subcommand!r})\n"
    )
    globals_ = sl.Globals.extended_by([sl.LibraryExtension.StructType, sl.LibraryExtension.Print])
    sl.eval(module, sl.parse("prelude", prelude), globals_)
    source = (ROOT / "Tiltfile").read_text()
    # Tilt's dialect: top-level statements and f-strings are allowed.
    dialect = sl.Dialect.extended()
    dialect.enable_top_level_stmt = True
    try:
        sl.eval(module, sl.parse("Tiltfile", source, dialect), globals_)
    except sl.StarlarkError:
        if failures:
            raise TiltfileFailed(failures[-1]) from None
        raise
    return rec
