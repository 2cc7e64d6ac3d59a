"""The prompted-mode loop: memento for a chat model nobody trained, done by the client.

Each round the model sees the problem and its mementos so far (never an earlier block), writes
one block and closes it with a memento; the client keeps the memento and drops the block. The
text-level counterpart of restart mode: the notes are re-read every round instead of being kept
in a KV cache. It ends when the model writes the answer marker and an answer, or after
`max_rounds` blocks, when the final answer is requested from the mementos. A reply without a
usable memento gets a short follow-up call asking for one, so a weak model still progresses;
each such step is a `Fallback` in the result.
"""

from __future__ import annotations

from collections.abc import Sequence

from memento.format import SUMMARY_END
from memento.prompted.client import ChatClient, Completion, Message
from memento.prompted.config import PromptedConfig
from memento.prompted.prompts import PromptTemplates, fill, format_values, load_prompts
from memento.prompted.reply import answer_from_final, memento_from_follow_up, read_reply
from memento.prompted.result import Bill, Fallback, PlainResult, PromptedResult


class PromptedSolver:
    """Solves problems in prompted mode against one endpoint; `solve()` may run in many threads at once.

    Args:
        config: endpoint, budgets, sampling and the prompt file.
        templates: prompts to use instead of `config.prompts` / the defaults.
        client: a `ChatClient` to share (default: one built from `config`).
    """

    def __init__(
        self,
        config: PromptedConfig,
        *,
        templates: PromptTemplates | None = None,
        client: ChatClient | None = None,
    ) -> None:
        self.config = config
        self.templates = templates or load_prompts(config.prompts)
        self.client = client or ChatClient(
            config.base_url,
            config.model,
            api_key=config.api_key,
            timeout=config.timeout,
            max_retries=config.max_retries,
            temperature=config.temperature,
            top_p=config.top_p,
        )
        self._values = format_values(
            block_tokens=config.block_tokens, memento_tokens=config.memento_tokens, max_rounds=config.max_rounds
        )
        self._stop = (SUMMARY_END,) if config.stop_at_memento_end else ()

    # -- messages -------------------------------------------------------------------------------

    def _fill(self, template: str, **values: object) -> str:
        return fill(template, {**self._values, **values})

    def _mementos_text(self, mementos: Sequence[str]) -> str:
        if not mementos:
            return self._fill(self.templates.no_mementos)
        items = (self._fill(self.templates.memento_item, number=i, memento=m) for i, m in enumerate(mementos, 1))
        return "\n".join(items)

    def round_messages(self, problem: str, mementos: Sequence[str], round_number: int) -> list[Message]:
        """What round `round_number` sends: the instructions, the problem and the mementos so far."""
        user = self._fill(
            self.templates.round, problem=problem, mementos=self._mementos_text(mementos), round=round_number
        )
        return [{"role": "system", "content": self._fill(self.templates.system)}, {"role": "user", "content": user}]

    def memento_request_messages(self, round_messages: list[Message], reply: str, round_number: int) -> list[Message]:
        """The follow-up asking for the memento of a block the model did not close."""
        shown = [{"role": "assistant", "content": reply}] if reply.strip() else []
        request = self._fill(self.templates.memento_request, round=round_number)
        return [*round_messages, *shown, {"role": "user", "content": request}]

    def final_messages(self, problem: str, mementos: Sequence[str]) -> list[Message]:
        """The request for the final answer from the mementos alone."""
        user = self._fill(self.templates.final_answer, problem=problem, mementos=self._mementos_text(mementos))
        return [{"role": "system", "content": self._fill(self.templates.system)}, {"role": "user", "content": user}]

    def plain_messages(self, problem: str) -> list[Message]:
        """The plain chain-of-thought baseline: the problem in one user message."""
        return [{"role": "user", "content": self._fill(self.templates.plain, problem=problem)}]

    # -- calls ----------------------------------------------------------------------------------

    def _call(self, messages: list[Message], bill: Bill, *, max_tokens: int, stop: Sequence[str] = ()) -> Completion:
        completion = self.client.complete(messages, max_tokens=max_tokens, stop=stop)
        bill.charge(completion)
        return completion

    def solve(self, problem: str) -> PromptedResult:
        """Solve one problem in prompted mode; raises `EndpointError` if the endpoint fails for good."""
        config = self.config
        mementos: list[str] = []
        fallbacks: list[Fallback] = []
        bill = Bill()
        answer: str | None = None
        rounds = 0
        for round_number in range(1, config.max_rounds + 1):
            rounds = round_number
            messages = self.round_messages(problem, mementos, round_number)
            completion = self._call(
                messages, bill, max_tokens=config.block_tokens + config.memento_tokens, stop=self._stop
            )
            reply = read_reply(completion.text, stopped=completion.stopped)
            mementos.extend(reply.mementos)
            if reply.answer:
                answer = reply.answer
                break
            if reply.answer is not None:
                fallbacks.append(Fallback("empty_answer", round_number))
                break
            if reply.mementos:
                continue
            fallbacks.append(Fallback(_missing_memento_kind(completion, reply.cut_memento), round_number))
            follow_up = self._call(
                self.memento_request_messages(messages, completion.text, round_number),
                bill,
                max_tokens=config.memento_tokens,
                stop=self._stop,
            )
            memento = memento_from_follow_up(follow_up.text)
            if memento:
                mementos.append(memento)
            else:
                fallbacks.append(Fallback("empty_memento", round_number))
        else:
            fallbacks.append(Fallback("max_rounds", rounds))
        if answer is None:
            final = self._call(self.final_messages(problem, mementos), bill, max_tokens=config.answer_tokens)
            answer = answer_from_final(final.text)
        return PromptedResult(answer=answer, mementos=mementos, rounds=rounds, fallbacks=fallbacks, bill=bill)

    def plain_call(self, problem: str) -> PlainResult:
        """One plain chain-of-thought call of `config.plain_budget` tokens; peak context = prompt + completion."""
        bill = Bill()
        completion = self._call(self.plain_messages(problem), bill, max_tokens=self.config.plain_budget)
        return PlainResult(
            answer=answer_from_final(completion.text),
            text=completion.text,
            finish_reason=completion.finish_reason,
            bill=bill,
        )


def _missing_memento_kind(completion: Completion, cut_memento: str | None) -> str:
    """Why a round's reply has no memento (a key of `FALLBACK_KINDS`)."""
    if not completion.text.strip():
        return "empty"
    if cut_memento is not None:
        return "memento_cut"
    return "no_memento" if completion.stopped else "cut_off"
