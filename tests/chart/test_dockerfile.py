"""Static checks of the Dockerfile, which cannot be built here (no container engine).

They catch the mistakes a first `docker build` would: a file the build reads that is not
copied or is excluded by .dockerignore, a toolchain older than the crate's rust-version;
and they keep the image consistent with the chart (user, ports, entrypoint).
"""

from __future__ import annotations

import fnmatch
import re
import tomllib
from pathlib import Path

import pytest

from conftest import REPO

DOCKERFILE = (REPO / "Dockerfile").read_text()
STAGES = re.split(r"(?m)^FROM\s+", DOCKERFILE)[1:]
BUILD, RUNTIME = STAGES[0], STAGES[-1]


def instructions(stage: str, name: str) -> list[str]:
    return [m.strip() for m in re.findall(rf"(?m)^{name}\s+(.+)$", stage)]


def copied_paths() -> list[str]:
    """Sources of the build stage's COPY instructions (context-relative)."""
    out = []
    for args in instructions(BUILD, "COPY"):
        if args.startswith("--from"):
            continue
        *sources, _dest = args.split()
        out += [s.rstrip("/") for s in sources]
    return out


def in_context(path: str) -> bool:
    """Whether .dockerignore lets `path` into the build context (last match wins)."""
    patterns = [line.strip() for line in (REPO / ".dockerignore").read_text().splitlines()
                if line.strip() and not line.startswith("#")]
    parts = path.split("/")
    prefixes = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
    excluded = False
    for pattern in patterns:
        negated = pattern.startswith("!")
        pattern = pattern.lstrip("!").rstrip("/")
        if any(fnmatch.fnmatchcase(p, pattern) for p in prefixes):
            excluded = not negated
    return not excluded


def is_copied(path: str) -> bool:
    return in_context(path) and any(path == c or path.startswith(c + "/")
                                    for c in copied_paths())


def files_the_build_reads() -> list[str]:
    """Cargo manifests, every Rust source, declared targets and include_str!/include_bytes!."""
    needed = {"Cargo.toml", "Cargo.lock"}
    if (REPO / "build.rs").exists():
        needed.add("build.rs")
    manifest = tomllib.loads((REPO / "Cargo.toml").read_text())
    needed.add(manifest["lib"]["path"])
    for section in ("bin", "bench"):
        for target in manifest.get(section, []):
            needed.add(target.get("path") or f"benches/{target['name']}.rs")
    for source in (REPO / "src").rglob("*.rs"):
        needed.add(str(source.relative_to(REPO)))
        for included in re.findall(r'include_(?:str|bytes)!\(\s*"([^"]+)"',
                                   source.read_text()):
            resolved = (source.parent / included).resolve()
            needed.add(str(resolved.relative_to(REPO)))
    return sorted(needed)


@pytest.mark.parametrize("path", files_the_build_reads())
def test_build_stage_sees_every_file_the_build_reads(path):
    assert (REPO / path).exists(), f"{path} is referenced but does not exist"
    assert is_copied(path), f"{path} is not in the image's build context or not copied"


def test_target_and_git_stay_out_of_the_context():
    for path in ("target/debug/spreadguard", ".git/HEAD", "charts/spreadguard/Chart.yaml",
                 "tests/chart/run.sh"):
        assert not in_context(path), path


def test_toolchain_is_new_enough():
    manifest = tomllib.loads((REPO / "Cargo.toml").read_text())
    wanted = tuple(int(x) for x in manifest["package"]["rust-version"].split("."))
    (default,) = re.findall(r"(?m)^ARG RUST_VERSION=([\d.]+)$", DOCKERFILE)
    assert tuple(int(x) for x in default.split(".")) >= wanted
    assert "--locked" in BUILD and "--release" in BUILD


def test_runtime_image_is_minimal_and_non_root(render):
    assert RUNTIME.startswith("gcr.io/distroless/cc-debian12:nonroot")
    (user,) = instructions(RUNTIME, "USER")
    uid = int(user.split(":")[0])
    assert uid != 0
    pod = render({}).deployment["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsUser"] == uid


def test_image_matches_the_chart(render):
    rendered = render({})
    container = rendered.deployment["spec"]["template"]["spec"]["containers"][0]
    (expose,) = instructions(RUNTIME, "EXPOSE")
    assert {int(p) for p in expose.split()} == {p["containerPort"] for p in container["ports"]}
    (entrypoint,) = instructions(RUNTIME, "ENTRYPOINT")
    assert entrypoint == '["/usr/local/bin/spreadguard"]'
    # The chart sets args only, so the entrypoint must be the binary itself.
    assert "command" not in container and container["args"][0] == "serve"
    copied = [a for a in instructions(RUNTIME, "COPY") if a.startswith("--from")]
    assert copied == ["--from=build /out/spreadguard /usr/local/bin/spreadguard"]


def test_docs_say_the_image_is_untested():
    operations = (REPO / "docs" / "operations.md").read_text()
    assert "has not been built or run" in operations


def test_only_the_build_stage_has_a_toolchain():
    assert len(STAGES) == 2
    assert Path(BUILD.split()[0]).name.startswith("rust:")
