/**
 * A conversation turn that recovers from a context overflow once: the
 * `Llm` it calls is wrapped so that a step the server refused as too long
 * is sent again with the conversation's earlier turns pruned to fit, and
 * every later step of the turn goes out on that pruned history. The turn's
 * own messages (its tool calls and results) are kept, so no tool runs twice
 * and no tool result loses its call.
 *
 * @internal
 */
import * as Effect from "effect/Effect"
import * as Stream from "effect/Stream"
import { type ConversationContext, type CountTokens, estimateTokens } from "../Context.js"
import { isContextOverflow, type LlmError, type LlmInvalidRequestError } from "../errors.js"
import type { CompletionOptions, Llm } from "../Llm.js"
import type { Message } from "../Message.js"
import * as Projection from "./projection.js"

/**
 * The share of the room the error leaves for the prompt that a pruned
 * history aims at: the server's template and tokenizer add to what is
 * counted here, and the reply needs room too.
 *
 * @internal
 */
export const overflowMargin = 0.9

/**
 * The share of the learned room a history is pruned to before it is sent
 * once it has outgrown that room: below the room, so that the next turns
 * fit (and share the prompt-cache prefix) until the history grows again.
 *
 * @internal
 */
export const learnedShare = 0.75

/**
 * What an overflow taught a conversation about its backend: how many tokens
 * (as `counter` counts them) a request's messages may take. Later turns are
 * pruned to fit before they are sent, instead of being refused first.
 *
 * @internal
 */
export class LearnedRoom {
  limit: number | undefined = undefined
  counter: CountTokens | undefined = undefined
}

const total = (messages: ReadonlyArray<Message>, count: CountTokens): number => {
  let sum = 0
  for (const message of messages) sum += count(message)
  return sum
}

/**
 * The context pruned so that the request (its messages, then the turn's
 * own `own`) fits below what `error` says. With the context's size known
 * and a way to count (the `TokenCounter`, or the estimate scaled to the
 * server's count of the prompt when the error gives it), it aims at
 * `overflowMargin` of the context less the output room asked for (the
 * error's, else the call's `maxTokens`); otherwise it keeps the newest half
 * of the earlier turns.
 */
const fit = (
  context: ConversationContext,
  own: ReadonlyArray<Message>,
  error: LlmInvalidRequestError,
  count: CountTokens | undefined,
  maxTokens: number | undefined,
  learned: LearnedRoom | undefined
): ConversationContext => {
  const counter = count ?? (error.promptTokens === undefined ? undefined : estimateTokens)
  if (error.contextTokens === undefined || counter === undefined) {
    const earlier = context.turns.length - 1
    return context.pruneTo({ maxTurns: 1 + Math.floor(earlier / 2) })
  }
  const room = (error.contextTokens - (error.requestedOutputTokens ?? maxTokens ?? 0)) * overflowMargin
  const ownTokens = total(own, counter)
  const counted = total(context.messages, counter) + ownTokens
  // the server's tokens per counted token: 1 when a TokenCounter counts as the server does
  const scale = error.promptTokens !== undefined && counted > 0 ? error.promptTokens / counted : 1
  // what a request's messages may take, counted as `counter` counts
  const limit = room / scale
  if (learned !== undefined) {
    learned.limit = limit
    learned.counter = counter
  }
  return context.pruneTo({ maxTokens: Math.max(0, Math.floor(limit - ownTokens)) }, counter)
}

/**
 * One turn's view of the history it sends: the context it started from,
 * replaced once by a pruned one after an overflow.
 *
 * @internal
 */
export class OverflowTurn {
  /** What the turn's requests start with. */
  base: ConversationContext
  /** Whether the current stream step delivered anything to the consumer (set by the conversation). */
  delivered = false
  private retried = false
  /** How many messages of a request are the starting context's: the rest are the turn's own. */
  private readonly prefix: number

  /**
   * A turn from `started`: pruned at once to `learnedShare` of the room an
   * earlier overflow taught `learned`, when the history has outgrown it.
   */
  constructor(
    readonly started: ConversationContext,
    private readonly count: CountTokens | undefined,
    private readonly learned?: LearnedRoom | undefined
  ) {
    this.prefix = started.messages.length
    const limit = learned?.limit
    const counter = learned?.counter
    this.base = limit !== undefined && counter !== undefined && total(started.messages, counter) > limit
      ? started.pruneTo({ maxTokens: Math.floor(limit * learnedShare) }, counter)
      : started
  }

  /** A request of the turn (the starting context's messages, then its own) on the current base. */
  request(messages: ReadonlyArray<Message>): ReadonlyArray<Message> {
    return this.base === this.started ? messages : [...this.base.messages, ...messages.slice(this.prefix)]
  }

  /**
   * After `error`: the request to send again, once per turn, when it is a
   * context overflow and pruning drops something; undefined otherwise.
   */
  retry(error: LlmError, request: ReadonlyArray<Message>, options: CompletionOptions | undefined) {
    if (this.retried || !isContextOverflow(error)) return undefined
    this.retried = true
    const own = request.slice(this.prefix)
    const pruned = fit(this.base, own, error, this.count, options?.maxTokens, this.learned)
    if (pruned === this.base) return undefined
    this.base = pruned
    return [...pruned.messages, ...own]
  }

  /** `llm`, with this turn's requests and its one retry after an overflow. */
  guard(llm: Llm.Service): Llm.Service {
    return {
      ...llm,
      complete: (messages, options) =>
        Effect.suspend(() => {
          const request = this.request(messages)
          return Effect.catchAll(llm.complete(request, options), (error) => {
            const again = this.retry(error, request, options)
            return again === undefined ? Effect.fail(error) : llm.complete(again, options)
          })
        }),
      stream: (messages, options) =>
        Projection.projectable(<A>(projection: Projection.Projection<A>) =>
          Stream.suspend(() => {
            const request = this.request(messages)
            this.delivered = false
            return Stream.catchAll(Projection.project(llm.stream(request, options), projection), (error) => {
              // after events reached the consumer, sending the step again would repeat them
              const again = this.delivered ? undefined : this.retry(error, request, options)
              return again === undefined
                ? Stream.fail(error)
                : Projection.project(llm.stream(again, options), projection)
            })
          })
        )
    }
  }
}
