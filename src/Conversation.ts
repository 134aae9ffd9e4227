/**
 * A conversation as a service: one `ConversationContext` behind a lock, with
 * `send` and `sendStream` that call the `Llm` (running tools when given a
 * toolkit) and record the turn. A turn is transactional: a failed call leaves
 * the conversation as it was; an interrupted stream (barge-in) is recorded as
 * the text the listener actually received; a spoken turn (`speak`) hands
 * the reply to a speech sink chunk by chunk and, interrupted, records what
 * the listener heard. A turn the server refuses as
 * longer than its context is pruned to fit and sent again, once
 * (`onOverflow`).
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Stream from "effect/Stream"
import * as SynchronizedRef from "effect/SynchronizedRef"
import type { ConversationContext } from "./Context.js"
import { type ContextOptions, make as makeContext } from "./Context.js"
import type { LlmError, LlmInvalidRequestError } from "./errors.js"
import { metered } from "./internal/meter.js"
import { OverflowTurn } from "./internal/overflowTurn.js"
import { ReplyCollector } from "./internal/replyCollector.js"
import { Llm, type PromptCacheOption } from "./Llm.js"
import { AssistantMessage, type Message } from "./Message.js"
import type { CompletionResult, StreamEvent } from "./Reply.js"
import { type SentenceOptions, sentences } from "./Stream.js"
import { TokenCounter } from "./TokenCounter.js"
import type { ToolExecutionError } from "./Tool.js"
import * as Toolkit from "./Toolkit.js"
import { Usage } from "./Usage.js"

/**
 * Per-turn options: completion options, plus a toolkit to run tools with.
 *
 * @since 0.1.0
 */
export interface SendOptions<R = never> extends Toolkit.RunOptions {
  readonly toolkit?: Toolkit.Toolkit<R> | undefined
}

/**
 * Where a spoken turn's chunks go: plays `chunk` and completes when it has
 * been played (heard). Interrupted (barge-in), it may have called `progress`
 * with the part of the chunk played so far (the text up to the last word
 * spoken, say), which is then recorded too; a sink that never calls it
 * records whole chunks only.
 *
 * @since 0.1.0
 */
export type SpeechSink<E = never, R = never> = (
  chunk: string,
  progress: (played: string) => Effect.Effect<void>
) => Effect.Effect<void, E, R>

/**
 * A spoken turn's options: a turn's options, the sink that plays the reply,
 * and how the reply is cut into chunks (`LlmStream.sentences`' options).
 *
 * @since 0.1.0
 */
export interface SpeakOptions<E = never, R = never> extends SendOptions<R> {
  readonly sink: SpeechSink<E, R>
  readonly chunks?: SentenceOptions | undefined
}

/**
 * How a conversation uses the backend's prompt cache, and what a context overflow does.
 *
 * @since 0.1.0
 */
export interface ConversationOptions {
  /**
   * Passed on each turn's calls (a turn's own `promptCache` wins): the key
   * (OpenAI's `prompt_cache_key`) is generated once per conversation, a
   * random UUID, unless given; the slot (llama-server's `id_slot`) is sent
   * only when given. `false`: no prompt caching.
   */
  readonly promptCache?: PromptCacheOption | false | undefined
  /**
   * What a context overflow (`isContextOverflow`: the server refused the
   * request as longer than its context) does to a turn. `"prune"` (the
   * default) prunes the earlier turns to fit, aiming below the size the
   * error gives (counted with the `TokenCounter` when provided), or drops
   * the older half of them when it gives none, and sends the refused step
   * again, once per turn; the turn is recorded on the pruned history.
   * `"fail"` fails the turn with the error. Either way a failed turn leaves
   * the conversation as it was.
   */
  readonly onOverflow?: "prune" | "fail" | undefined
}

/**
 * A conversation with the `Llm` in context.
 *
 * @since 0.1.0
 */
export class Conversation extends Context.Tag("effect-llm/Conversation")<Conversation, Conversation.Service>() {}

/**
 * The types of the `Conversation` service.
 *
 * @since 0.1.0
 */
export declare namespace Conversation {
  /**
   * What the conversation service offers.
   *
   * @since 0.1.0
   */
  export interface Service {
    /** The conversation so far. */
    readonly context: Effect.Effect<ConversationContext>
    /**
     * What the conversation's calls were billed for, summed (`Usage.sum`):
     * every call of every turn (tool steps, the retry after a context
     * overflow, warm-ups), failed and interrupted turns included when their
     * provider reported usage (`Usage.billed` of each reply, a failed call's
     * `error.usage`; a stream cut off before its end reported none). `set`
     * does not reset it. Its cost is absent once any call's was unknown.
     */
    readonly usage: Effect.Effect<Usage>
    /** Sends what the user said and records the whole turn once the reply is complete. */
    readonly send: <R = never>(
      userText: string,
      options?: SendOptions<R>
    ) => Effect.Effect<CompletionResult, LlmError | ToolExecutionError, R>
    /**
     * Streams the reply. The turn is recorded when the stream ends; if the
     * consumer stops early (barge-in), what it received is recorded, marked
     * interrupted; if the call fails, nothing is.
     */
    readonly sendStream: <R = never>(
      userText: string,
      options?: SendOptions<R>
    ) => Stream.Stream<StreamEvent, LlmError | ToolExecutionError, R>
    /**
     * A spoken turn: the reply's text is cut into chunks (`LlmStream.sentences`
     * with `chunks`) and each is handed to `sink`, one at a time, in order;
     * tools run as in `sendStream`. Completed, the whole reply is recorded and
     * returned (the last step's, as `send` returns). Interrupted (barge-in:
     * the fiber running it is), the reply is recorded as what the listener
     * heard, marked interrupted: the chunks whose playback completed, joined
     * by spaces, and the part of the chunk in progress the sink reported;
     * nothing when nothing was heard. Running tool handlers are interrupted
     * too, except those of tools that are not `interruptible`, whose calls
     * and results are recorded. A failed call or sink leaves the
     * conversation as it was.
     */
    readonly speak: <E = never, R = never>(
      userText: string,
      options: SpeakOptions<E, R>
    ) => Effect.Effect<CompletionResult, LlmError | ToolExecutionError | LlmInvalidRequestError | E, R>
    /** Replaces the conversation (e.g. one restored with `ConversationContext.decode`). */
    readonly set: (context: ConversationContext) => Effect.Effect<void>
    /**
     * Sends the conversation so far (the system prompt, the options' tools
     * and toolkit, the turns) for the backend to cache, generating nothing,
     * so the next turn's answer starts sooner: call it before the first user
     * turn. The history is not changed. `None`, with nothing sent, when the
     * backend has no prompt cache to warm (OpenRouter, a fallback chain, a
     * scripted `Llm`) or the conversation's caching is off.
     */
    readonly warm: <R = never>(options?: SendOptions<R>) => Effect.Effect<Option.Option<CompletionResult>, LlmError>
  }
}

const emptyKit: Toolkit.Toolkit<never> = { tools: new Map(), definitions: [] }

/** What a spoken turn tells the streamed turn: when a step was recorded, and what was heard of the step in progress. */
interface Listener {
  readonly onStep: (added: ReadonlyArray<Message>) => void
  readonly heard: () => string
}

/**
 * Builds the service over a starting context.
 *
 * @since 0.1.0
 */
export const make = (
  initial: ConversationContext,
  options: ConversationOptions = {}
): Effect.Effect<Conversation.Service, never, Llm> =>
  Effect.gen(function*() {
    let billed = Usage.zero
    const llm = metered(yield* Llm, (usage) => void (billed = Usage.add(billed, usage)))
    // one key for the whole conversation, so every turn is routed to the same cache
    const promptCache: PromptCacheOption | false = options.promptCache === false
      ? false
      : { ...options.promptCache, key: options.promptCache?.key ?? (yield* Effect.sync(() => crypto.randomUUID())) }
    const cached = <O extends { readonly promptCache?: PromptCacheOption | false | undefined }>(turn: O): O => ({
      ...turn,
      promptCache: turn.promptCache ?? promptCache
    })
    const counter = yield* Effect.serviceOption(TokenCounter)
    const count = Option.isSome(counter) ? counter.value.count : undefined
    const ref = yield* SynchronizedRef.make(initial)
    // one turn at a time, whether sent whole or streamed
    const turnLock = yield* Effect.makeSemaphore(1)
    const prunes = options.onOverflow !== "fail"
    /** The turn started on `started`, and the `Llm` its steps call. */
    const turnOf = (started: ConversationContext) => {
      const overflow = new OverflowTurn(started, count)
      return { overflow, llm: prunes ? overflow.guard(llm) : llm }
    }

    const append = (context: ConversationContext, added: ReadonlyArray<Message>) =>
      added.reduce<ConversationContext>(
        (acc, message) =>
          message.role === "assistant"
            ? acc.addAssistant(message, count)
            : message.role === "tool"
            ? acc.addToolResult(message, count)
            : acc,
        context
      )

    const send = <R>(userText: string, turn: SendOptions<R> = {}) =>
      turnLock.withPermits(1)(SynchronizedRef.modifyEffect(ref, (context) => {
        const options = cached(turn)
        const started = context.addUser(userText, count)
        const { llm, overflow } = turnOf(started)
        return Toolkit.run(started.messages, options.toolkit ?? (emptyKit as Toolkit.Toolkit<R>), options).pipe(
          Effect.provideService(Llm, llm),
          Effect.map(({ added, result }) => [result, append(overflow.base, added)] as const)
        )
      }))

    const streamTurn = <R>(userText: string, turn: SendOptions<R>, listener?: Listener) =>
      Stream.unwrapScoped(Effect.gen(function*() {
        const options = cached(turn)
        // hold the conversation for the whole stream: turns never interleave
        yield* Effect.acquireRelease(turnLock.take(1), () => turnLock.release(1))
        const context = yield* SynchronizedRef.get(ref)
        const started = context.addUser(userText, count)
        const { llm, overflow } = turnOf(started)
        const steps: Array<Message> = []
        // on the turn's base, which an overflow may have pruned
        const recorded = () => append(overflow.base, steps)
        let received: Array<string> = []
        let complete = false
        const onStep = (added: ReadonlyArray<Message>) =>
          Effect.sync(() => {
            for (const message of added) {
              // a tool step cut short by barge-in keeps, in a spoken turn, the text that was heard of it
              steps.push(
                listener !== undefined && message.role === "assistant" && message.interrupted === true
                  ? new AssistantMessage({ ...message, content: listener.heard() }, true)
                  : message
              )
            }
            received = []
            listener?.onStep(added)
          })
        yield* Effect.addFinalizer((exit) =>
          SynchronizedRef.update(ref, (current) => {
            if (current !== context) return current // someone else moved on meanwhile
            // a spoken turn is complete once its last chunk was played
            if (complete && (listener === undefined || Exit.isSuccess(exit))) return recorded()
            if (Exit.isFailure(exit) && !Exit.isInterrupted(exit)) return current
            // barge-in: keep what the listener heard, never an unresolved tool call
            const heard = listener === undefined ? received.join("") : listener.heard()
            return heard === ""
              ? recorded()
              : recorded().addAssistant(new AssistantMessage({ content: heard, interrupted: true }), count)
          })
        )
        return Toolkit.stream(started.messages, options.toolkit ?? (emptyKit as Toolkit.Toolkit<R>), {
          ...options,
          onStep
        }).pipe(
          Stream.provideService(Llm, llm),
          Stream.tap((event) =>
            Effect.sync(() => {
              overflow.delivered = true
              if (event._tag === "TextDelta") received.push(event.text)
              else if (event._tag === "Finish") complete = true
            })
          )
        )
      }))

    const sendStream = <R>(userText: string, turn: SendOptions<R> = {}) => streamTurn(userText, turn)

    const speak = <E, R>(userText: string, turn: SpeakOptions<E, R>) =>
      Effect.suspend(() => {
        const { chunks, sink, ...options } = turn
        // chunks are numbered as they are cut; those from `stepStart` on belong to the step in progress
        let cut = 0
        let stepStart = 0
        const played: Array<{ readonly index: number; readonly text: string }> = []
        let partial = ""
        // the reply `send` would return: the last step's
        let reply = new ReplyCollector()
        const listener: Listener = {
          onStep: (added) => {
            stepStart = cut
            // the chunk in progress was recorded with the step it was cut from
            if (added.some((message) => message.role === "assistant" && message.interrupted === true)) partial = ""
            if (added.some((message) => message.role === "tool")) reply = new ReplyCollector()
          },
          heard: () =>
            [...played.filter((chunk) => chunk.index >= stepStart).map((chunk) => chunk.text), partial]
              .filter((text) => text !== "")
              .join(" ")
        }
        const progress = (text: string) => Effect.sync(() => void (partial = text.trim()))
        const events = streamTurn(userText, options, listener).pipe(
          Stream.tap((event) => Effect.sync(() => reply.push(event)))
        )
        return sentences(events, chunks).pipe(
          Stream.map((text) => ({ index: cut++, text })),
          Stream.runForEach((chunk) =>
            Effect.zipRight(
              Effect.suspend(() => (partial = "", sink(chunk.text, progress))),
              Effect.sync(() => {
                played.push(chunk)
                partial = ""
              })
            )
          ),
          Effect.flatMap(() => {
            const result = reply.result()
            return result === undefined
              ? Effect.dieMessage("Conversation.speak: the turn ended without a reply")
              : Effect.succeed(result)
          })
        )
      })

    // under the turn lock: a warm-up never interleaves with a turn (nor lands in a slot a turn is using)
    const warm = <R>(turn: SendOptions<R> = {}) =>
      turnLock.withPermits(1)(Effect.flatMap(SynchronizedRef.get(ref), (context) => {
        const options = cached(turn)
        return Toolkit.warm(context.messages, options.toolkit ?? (emptyKit as Toolkit.Toolkit<R>), options).pipe(
          Effect.provideService(Llm, llm)
        )
      }))

    return {
      context: SynchronizedRef.get(ref),
      usage: Effect.sync(() => billed),
      send,
      sendStream,
      speak,
      set: (context) => SynchronizedRef.set(ref, context),
      warm
    } satisfies Conversation.Service
  })

/**
 * A conversation service starting empty with the given limits (default: 10
 * turns), prompt cache use and overflow behaviour (default: prune and retry
 * once).
 *
 * @since 0.1.0
 */
export const layer = (options: ContextOptions & ConversationOptions = {}): Layer.Layer<Conversation, never, Llm> =>
  Layer.effect(Conversation, make(makeContext(options), options))
