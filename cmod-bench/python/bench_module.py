"""The benchmark's module written with the official Python SDK (`pip install foundry-compute-modules`).

The same functions as `src/bin/bench_module.rs` (cmod) and `src/bin/baseline.rs`: `add`, `echo`
(about 1 MB of JSON in and out) and `count` (streams n small items). The bench driver runs it
with the local runtime's environment when `python3` can import `compute_modules`.
"""

import typing
from dataclasses import dataclass
from typing import Optional

from compute_modules import add_function, start_compute_module


@dataclass
class AddInput:
    x: int
    y: int


@dataclass
class Payload:
    text: str
    numbers: list[int]
    note: Optional[str] = None


@dataclass
class EchoInput:
    payload: Payload


@dataclass
class CountInput:
    n: int


def add(context, event: AddInput) -> int:
    return event.x + event.y


def echo(context, event: EchoInput) -> Payload:
    return event.payload


def count(context, event: CountInput) -> typing.Iterable[int]:
    for i in range(event.n):
        yield i


if __name__ == "__main__":
    add_function(add)
    add_function(echo)
    add_function(count, streaming=True)
    start_compute_module()
