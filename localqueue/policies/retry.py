"""The built-in retry policy: give up on listed exceptions, else retry within budget.

A failure with budget left is released after the backoff (or the release
delay). A failure on the last attempt is dead-lettered, or, with
dead-lettering turned off, released again after the capped delay so an
exhausted message stays visible without becoming a hot loop.
"""

from __future__ import annotations

from localqueue.hookspecs import hookimpl
from localqueue.worker.hook_types import Failure, RetryDecision


@hookimpl(trylast=True)
def localqueue_retry_decision(failure: Failure) -> RetryDecision:
    config = failure.worker.config
    attempts = failure.message.attempts
    if config.give_up_on and isinstance(failure.error, config.give_up_on):
        return RetryDecision.dead_letter(f"{type(failure.error).__name__} is in give_up_on")
    max_attempts = config.max_retries + 1
    if attempts >= max_attempts:
        if config.dead_letter_on_failure:
            return RetryDecision.dead_letter(f"no attempts left ({attempts} of {max_attempts})")
        return RetryDecision.release(config.exhausted_delay(), "exhausted; dead-lettering is off")
    return RetryDecision.release(config.retry_delay(attempts), f"attempt {attempts} failed")
