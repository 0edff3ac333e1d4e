"""What every verifiable-instruction checker shares: the base class, errors, argument checks.

The IFEval checkers (``instructions``) and the IFBench checkers (``ifbench_*``) both build
on this module; ``instructions.build_instruction`` is the one registry by id over both.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from typing import Any, ClassVar


class InstructionError(ValueError):
    """An instruction that cannot be checked: bad kwargs, or (subclass) an unknown id."""


class UnknownInstruction(InstructionError):
    """No checker is registered for this instruction id."""


class UnverifiableInstruction(UnknownInstruction):
    """A known id whose reference check needs data no offline package carries; never fails."""

    def __init__(self, message: str, wording: str) -> None:
        super().__init__(message)
        self.wording = wording
        """The instruction in words, for a judge."""


class Instruction(ABC):
    """One verifiable instruction with its arguments; ``check`` is the strict verdict."""

    id: ClassVar[str]

    @abstractmethod
    def check(self, response: str) -> bool: ...

    @abstractmethod
    def describe(self) -> str:
        """The instruction in words, as a prompt would state it."""


# --- argument checks (IFBench data gives whole numbers as floats, e.g. 8.0) -----------

def whole_number(checker: object, name: str, minimum: int = 0) -> None:
    """Require ``checker.<name>`` to be a whole number >= minimum; store it as an int."""
    value = getattr(checker, name)
    integral = isinstance(value, int) or (isinstance(value, float) and value.is_integer())
    if isinstance(value, bool) or not integral or value < minimum:
        raise InstructionError(f"{name} must be a whole number >= {minimum}, got {value!r}")
    object.__setattr__(checker, name, int(value))


def real_number(checker: object, name: str) -> None:
    """Require ``checker.<name>`` to be a finite number (a percentage, say)."""
    value = getattr(checker, name)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise InstructionError(f"{name} must be a number, got {value!r}")


def non_empty_text(checker: object, name: str) -> None:
    """Require ``checker.<name>`` to be a string with something besides whitespace."""
    value: Any = getattr(checker, name)
    if not isinstance(value, str) or not value.strip():
        raise InstructionError(f"{name} must be a non-empty string, got {value!r}")
