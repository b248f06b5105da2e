"""rlm-ray: Recursive Language Models on Ray.

Only re-exports; see the README's file tour for where each piece lives.

Public: the names in `__all__`, `rlm_ray.ops`, `rlm_ray.testing` and the `rlm-ray` command.
Every other module is internal: the folders (`core/`, `models/`, `runtime/`, ...) group them
by concern, and each folder's `__init__.py` says what it holds.
"""

from rlm_ray import ops as ops  # the semantic operators: rlm_ray.ops.map, .filter, .classify
from rlm_ray.config import RLMConfig
from rlm_ray.errors import (
    ConfigError,
    ContextWindowError,
    LimitExceededError,
    LLMError,
    LocalServerError,
    ProgramError,
    RLMError,
    SandboxError,
    SubCallError,
)
from rlm_ray.ops import OpResult
from rlm_ray.program import AnswerRule, Program, ProgramCell
from rlm_ray.progress import DepthProgress, Progress
from rlm_ray.rlm import RLM, load
from rlm_ray.session import Session
from rlm_ray.tools import ToolCall, tool
from rlm_ray.types import CallTrace, Result, Usage

__version__ = "0.1.0"

__all__ = [
    "RLM",
    "AnswerRule",
    "CallTrace",
    "ConfigError",
    "ContextWindowError",
    "DepthProgress",
    "LLMError",
    "LimitExceededError",
    "LocalServerError",
    "OpResult",
    "Program",
    "ProgramCell",
    "ProgramError",
    "Progress",
    "RLMConfig",
    "RLMError",
    "Result",
    "SandboxError",
    "Session",
    "SubCallError",
    "ToolCall",
    "Usage",
    "load",
    "tool",
]
