"""Memory planning: where in one static arena every tensor lives, and when.

Op i of the graph runs at *step* i. A tensor is *alive* from the step that produces it (the
model's input: step 0) to the last step that reads it (the model's output: the last step), both
included: during an op its inputs and its output exist at once.

A *buffer* is a region of the arena. Usually one tensor has one buffer; two tensors share one
when an op writes its output over its input:

* a *view* (a flatten that moves no bytes) shares its input's buffer;
* *in-place depthwise*: channel c of a depthwise convolution's output depends only on channel c
  of its input, so the kernel copies input channel c to a one-channel scratch buffer, computes
  output channel c from the copy straight into the input's place, and moves on. The input must
  die at this op and have the output's shape (stride 1, 'same' padding);
* *in-place pointwise* (C_in == C_out): output pixel p depends only on input pixel p, so the
  kernel computes a pixel (or a few) into a scratch buffer of C_out bytes each, then writes it
  back over the pixel it read.

Scratch buffers live for one step. Plans (all offsets aligned to `ALIGN` bytes):

* `naive`: every buffer its own region; the arena is the sum of all sizes;
* `first_fit`: buffers one by one, each at the lowest offset where it overlaps no placed buffer
  that is alive at the same time; largest first (TFLite Micro's greedy planner) or in execution
  order, or both keeping the better.

No plan can be smaller than the *lower bound*: the most bytes alive at any one step. Lifetimes
follow the course's one liveness rule (`tinyml_utils.liveness`), per tensor; buffers then merge
the lifetimes of the tensors they hold.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from .. import liveness
from .ir import Graph, Op

ALIGN = 4  # bytes: kernels read activations a word at a time


@dataclass
class Buffer:
    """An arena region: size in bytes, alive during steps first..last (inclusive), the tensors it stores."""
    name: str
    size: int
    first: int
    last: int
    tensors: list = field(default_factory=list)
    offset: int = -1

    def alive(self, step: int) -> bool:
        return self.first <= step <= self.last

    def overlaps_in_time(self, other: "Buffer") -> bool:
        return self.first <= other.last and other.first <= self.last


@dataclass
class Plan:
    """A memory plan: buffers with offsets, the arena size (bytes), ops run in place, scratch by op."""
    strategy: str
    buffers: list
    arena_bytes: int
    num_steps: int
    inplace: dict = field(default_factory=dict)   # op name -> "depthwise" / "pointwise"
    scratch: dict = field(default_factory=dict)   # op name -> Buffer

    def buffer_of(self, tensor: str) -> Buffer:
        for b in self.buffers:
            if tensor in b.tensors:
                return b
        raise KeyError(f"tensor {tensor!r} has no buffer in this plan")

    def offset(self, tensor: str) -> int:
        """Byte offset of a tensor in the arena."""
        return self.buffer_of(tensor).offset

    def live_bytes(self) -> list[int]:
        """Bytes alive at each step (buffer sizes, no alignment): the memory timeline."""
        ranges = {i: (b.first, b.last) for i, b in enumerate(self.buffers)}
        return liveness.bytes_alive(ranges, {i: b.size for i, b in enumerate(self.buffers)}, self.num_steps)

    @property
    def lower_bound(self) -> int:
        """The most bytes alive at one step: no placement of these buffers can use fewer."""
        return max(self.live_bytes())

    def check(self) -> None:
        """Raise if two buffers alive at the same step overlap in the arena, or one leaves it."""
        for i, a in enumerate(self.buffers):
            if a.offset < 0 or a.offset % ALIGN or a.offset + a.size > self.arena_bytes:
                raise AssertionError(f"buffer {a.name} at {a.offset} (+{a.size}) is outside the arena or misaligned")
            for b in self.buffers[i + 1:]:
                if a.overlaps_in_time(b) and a.offset < b.offset + b.size and b.offset < a.offset + a.size:
                    raise AssertionError(f"buffers {a.name} and {b.name} are alive together and overlap")


def lifetimes(graph: Graph) -> dict[str, tuple[int, int]]:
    """(first step, last step) of every tensor; the input is born at step 0, the output lives to the end."""
    return liveness.lifetimes([(op.inputs, op.output) for op in graph.ops], initial=[graph.input], born=0,
                              keep=[graph.output], kept_until=len(graph.ops) - 1)


def can_run_in_place(graph: Graph, op: Op, buffer_last: int, step: int, depthwise: bool, pointwise: bool) -> str | None:
    """'depthwise' or 'pointwise' if `op` may overwrite its input, else None.

    Legal when the input's buffer dies at this op (nothing reads it later) and input and output
    have the same shape, so every output element lands on the input element it came from.
    """
    same_shape = graph.tensors[op.inputs[0]].shape == graph.tensors[op.output].shape
    if not same_shape or buffer_last != step:
        return None
    if depthwise and op.kind == "depthwise":
        return "depthwise"
    if pointwise and op.kind == "pointwise":
        return "pointwise"
    return None


def default_scratch(graph: Graph, op: Op, inplace: str | None) -> int:
    """Scratch bytes of the reference kernels: one channel (in-place depthwise) or one pixel (in-place pointwise)."""
    h, w, c = graph.tensors[op.inputs[0]].shape if len(graph.tensors[op.inputs[0]].shape) == 3 else (1, 1, 1)
    if inplace == "depthwise":
        return h * w
    if inplace == "pointwise":
        return c
    return 0


def make_buffers(graph: Graph, inplace_depthwise: bool = False, inplace_pointwise: bool = False,
                 scratch=default_scratch) -> tuple[list[Buffer], dict, dict]:
    """Group tensors into buffers (views and in-place ops share), add scratch buffers.

    `scratch(graph, op, inplace) -> bytes` says how much scratch each op's kernel needs.
    Returns (buffers, {op: in-place kind}, {op: scratch Buffer}).
    """
    life = lifetimes(graph)
    home = {graph.input: Buffer(graph.input, graph.tensors[graph.input].nbytes, *life[graph.input], [graph.input])}
    buffers, inplace, scratches = [home[graph.input]], {}, {}
    for step, op in enumerate(graph.ops):
        out = graph.tensors[op.output]
        source = home[op.inputs[0]]
        # A buffer's last step is the latest of its tensors': a view of the input keeps it alive.
        source_last = max(source.last, *(life[t][1] for t in source.tensors))
        kind = None if graph.is_view(op) else can_run_in_place(graph, op, source_last, step, inplace_depthwise,
                                                              inplace_pointwise)
        if graph.is_view(op) or kind:
            source.tensors.append(op.output)
            source.last = max(source_last, life[op.output][1])
            source.size = max(source.size, out.nbytes)
            home[op.output] = source
            if kind:
                inplace[op.name] = kind
        else:
            home[op.output] = Buffer(op.output, out.nbytes, *life[op.output], [op.output])
            buffers.append(home[op.output])
        need = scratch(graph, op, kind)
        if need:
            scratches[op.name] = Buffer(f"{op.name}.scratch", int(need), step, step)
            buffers.append(scratches[op.name])
    for b in buffers:  # a buffer shared by views lives as long as its longest-lived tensor
        b.last = max([b.last] + [life[t][1] for t in b.tensors])
    return buffers, inplace, scratches


def _aligned(n: int) -> int:
    return (n + ALIGN - 1) // ALIGN * ALIGN


def place_naive(buffers: list[Buffer]) -> int:
    """Every buffer its own region, one after another; returns the arena size."""
    offset = 0
    for b in buffers:
        b.offset = offset
        offset = _aligned(offset + b.size)
    return offset


ORDERS = {"size": lambda b: (-b.size, b.first, b.name),     # largest first (TFLite Micro's greedy planner)
          "time": lambda b: (b.first, -b.size, b.name)}     # in execution order


def place_first_fit(buffers: list[Buffer], order: str = "size") -> int:
    """Buffers in `order`, each at the lowest aligned offset free while it is alive; returns the arena size."""
    placed: list[Buffer] = []
    for b in sorted(buffers, key=ORDERS[order]):
        busy = sorted((p.offset, p.offset + p.size) for p in placed if p.overlaps_in_time(b))
        offset = 0
        for start, end in busy:          # slide past every region that would overlap
            if offset + b.size <= start:
                break
            offset = max(offset, _aligned(end))
        b.offset = offset
        placed.append(b)
    return _aligned(max((b.offset + b.size for b in buffers), default=0))


def plan_memory(graph: Graph, strategy: str = "first_fit", inplace_depthwise: bool = False,
                inplace_pointwise: bool = False, scratch=default_scratch, order: str = "best") -> Plan:
    """Plan the arena: `strategy` 'naive' or 'first_fit', optionally with in-place depthwise / pointwise.

    First-fit `order`: 'size' (largest buffer first), 'time' (execution order) or 'best' (both,
    keep the smaller arena; it is a heuristic, and neither order wins on every graph).
    """
    buffers, inplace, scratches = make_buffers(graph, inplace_depthwise, inplace_pointwise, scratch)
    if strategy == "naive":
        arena = place_naive(buffers)
    elif strategy == "first_fit":
        if order not in (*ORDERS, "best"):
            raise ValueError(f"unknown order {order!r}; choose one of {[*ORDERS, 'best']}")
        tried = {o: place_first_fit(buffers, o) for o in (ORDERS if order == "best" else [order])}
        order = min(tried, key=lambda o: (tried[o], o != "size"))
        arena = place_first_fit(buffers, order)
        strategy = f"first_fit ({order} order)"
    else:
        raise ValueError(f"unknown strategy {strategy!r}; choose 'naive' or 'first_fit'")
    plan = Plan(strategy, buffers, arena, len(graph.ops), inplace, scratches)
    plan.check()
    return plan
