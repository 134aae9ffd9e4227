/**
 * Toolkits and the tool-execution loop: call the model, run the tools it asks
 * for, give it the results, until it answers.
 *
 * @since 0.1.0
 */
import * as Clock from "effect/Clock"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as FiberId from "effect/FiberId"
import * as Option from "effect/Option"
import type * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import type { LlmError, LlmOutputError, LlmResponseError } from "./errors.js"
import { invalidRequest, responseError } from "./internal/errorFactory.js"
import { maxDepth, nestsDeeperThan } from "./internal/json.js"
import { cleanFunctionName, functionNameRule } from "./internal/names.js"
import * as Projection from "./internal/projection.js"
import { ReplyCollector } from "./internal/replyCollector.js"
import * as StreamOps from "./internal/streamOps.js"
import * as Structured from "./internal/structured.js"
import * as ToolSpans from "./internal/toolSpans.js"
import { durationProblem } from "./internal/validate.js"
import { type CompletionOptions, Llm } from "./Llm.js"
import { AssistantMessage, type Message, ToolCall, type ToolDefinition, ToolMessage } from "./Message.js"
import { CompletionResult, StreamEvent } from "./Reply.js"
import type { ObjectOptions, ObjectResult } from "./StructuredOutput.js"
import { type Tool, ToolExecutionError } from "./Tool.js"
import { Usage } from "./Usage.js"

/**
 * A set of tools, looked up by name.
 *
 * @since 0.1.0
 */
export interface Toolkit<R = never> {
  readonly tools: ReadonlyMap<string, Tool<R>>
  readonly definitions: ReadonlyArray<ToolDefinition>
}

/**
 * The services the handlers of some tools need.
 *
 * @since 0.1.0
 */
export type Requirements<Tools extends ReadonlyArray<Tool<unknown>>> = Tools[number] extends Tool<infer R> ? R : never

/**
 * Groups tools into a toolkit.
 *
 * @since 0.1.0
 */
export const make = <Tools extends ReadonlyArray<Tool<unknown>>>(...tools: Tools): Toolkit<Requirements<Tools>> => ({
  tools: new Map(tools.map((tool) => [tool.name, tool as Tool<Requirements<Tools>>])),
  definitions: tools.map((tool) => tool.definition)
})

/**
 * The services the handlers of some toolkits need.
 *
 * @since 0.1.0
 */
export type KitRequirements<Kits extends ReadonlyArray<Toolkit<unknown>>> = Kits[number] extends Toolkit<infer R> ? R
  : never

/**
 * One toolkit with the tools of several (Schema tools and an MCP toolkit,
 * say). A name two toolkits share is the first one's tool; the other's is
 * left out, so the model is never offered a name twice. The result reads its
 * toolkits each time it is used, so it follows one whose tools change (an
 * MCP server's tool list), and the loop offers the new tools at its next step.
 *
 * @since 0.1.0
 */
export const merge = <Kits extends ReadonlyArray<Toolkit<unknown>>>(...kits: Kits): Toolkit<KitRequirements<Kits>> => {
  type R = KitRequirements<Kits>
  let seen: ReadonlyArray<ReadonlyMap<string, Tool<unknown>>> = []
  let current: Toolkit<R> = { tools: new Map(), definitions: [] }
  const read = (): Toolkit<R> => {
    const maps = kits.map((kit) => kit.tools)
    if (maps.length === seen.length && maps.every((map, i) => map === seen[i])) return current
    const tools = new Map<string, Tool<R>>()
    for (const map of maps) {
      for (const [name, tool] of map) if (!tools.has(name)) tools.set(name, tool as Tool<R>)
    }
    seen = maps
    current = { tools, definitions: [...tools.values()].map((tool) => tool.definition) }
    return current
  }
  return {
    get tools() {
      return read().tools
    },
    get definitions() {
      return read().definitions
    }
  }
}

/**
 * How the loop runs.
 *
 * @since 0.1.0
 */
export interface RunOptions extends CompletionOptions {
  /** Model calls at most (default 5). When reached, the last reply is returned with finishReason "length". */
  readonly maxSteps?: number | undefined
  /** Tool calls run at once (default 4). */
  readonly concurrency?: number | undefined
  /**
   * Fail the run with `ToolExecutionError` on an unknown tool, invalid
   * arguments or a failing handler, instead of sending the error back to the
   * model as an error result (the default, so it can recover).
   */
  readonly failOnToolError?: boolean | undefined
  /**
   * `stream` only: when a step's model call has produced no content event
   * this long after the step started, a `Silence` event is emitted (once per
   * step), for the application to fill the pause ("Hmm, let me think").
   * Nothing is cancelled. Default: never.
   */
  readonly silenceAfter?: Duration.DurationInput | undefined
}

/**
 * What a loop produced: the final reply and every message it added.
 *
 * @since 0.1.0
 */
export interface RunResult {
  readonly result: CompletionResult
  /** The assistant and tool messages added, in order; append them to the history. */
  readonly added: ReadonlyArray<Message>
  /** Model calls made. */
  readonly steps: number
  /** What the loop's model calls were billed for, summed (`Usage.sum` of `stepUsage`). */
  readonly usage: Usage
  /** What each model call was billed for (`Usage.billed` of its reply: failed attempts before it included), in order. */
  readonly stepUsage: ReadonlyArray<Usage>
}

/**
 * Prefixes models wrap tool names in (gpt-oss's `functions.get_weather`, and
 * `tools.`): a call named so runs the tool of the bare name.
 *
 * @since 0.1.0
 */
export const wrapperPrefixes: ReadonlyArray<string> = ["functions.", "tools."]

/**
 * The name a call gives, without what gpt-oss sometimes leaves around it:
 * Harmony's channel residue after the name (`get_weather<|channel|>commentary`,
 * `get_weather<|constrain|>json`: everything from the first `<|`, which no
 * function name holds), surrounding blanks, then a wrapper prefix.
 */
const bareName = (name: string): string => {
  const residue = name.indexOf("<|")
  const cut = (residue < 0 ? name : name.slice(0, residue)).trim()
  const prefix = wrapperPrefixes.find((p) => cut.startsWith(p))
  return prefix === undefined ? cut : cut.slice(prefix.length)
}

/**
 * The tool a call names, and the name the call is recorded under in the
 * history: the tool's own when the name, as given or bare (see `bareName`),
 * is a tool; else the bare name made a valid function name (other characters
 * become `_`, at most 64), so the history can be sent back.
 */
const resolve = <R>(kit: Toolkit<R>, name: string): { readonly tool: Tool<R> | undefined; readonly name: string } => {
  const exact = kit.tools.get(name)
  if (exact !== undefined) return { tool: exact, name }
  const bare = bareName(name)
  const tool = kit.tools.get(bare)
  return {
    tool,
    name: tool !== undefined ? bare : cleanFunctionName(bare).slice(0, functionNameRule.max) || "unnamed"
  }
}

/**
 * The calls of a step as the history records them: each under the name it
 * resolves to (see `wrapperPrefixes`; channel residue is dropped too), so the
 * history stays valid to send.
 *
 * @since 0.1.0
 */
export const recorded = <R>(kit: Toolkit<R>, calls: ReadonlyArray<ToolCall>): ReadonlyArray<ToolCall> =>
  calls.map((call) => {
    const { name } = resolve(kit, call.name)
    return name === call.name ? call : new ToolCall({ ...call, name }, true)
  })

/**
 * Runs the calls of one step and returns their tool messages, in call order.
 * A call names its tool bare, with a wrapper prefix or with gpt-oss's
 * channel residue (`get_weather<|channel|>commentary`); an unknown name is an
 * error result (or, with `failOnToolError`, a `ToolExecutionError`).
 * Interrupting it interrupts the running handlers, except those of tools
 * declared `interruptible: false`, which run to their end first; `onResult`
 * sees each result as it is made (with its call), so the caller knows which
 * calls finished, and `onStart` each call as its handler is about to run
 * (within the `concurrency` bound). With `final`, a call of a tool that
 * waits for the final turn (`Tool.waitForFinal`) runs (and starts) only once
 * `final` has completed (the others at once); the wait itself is always
 * interruptible.
 *
 * @since 0.1.0
 */
export const execute = <R>(
  kit: Toolkit<R>,
  calls: ReadonlyArray<ToolCall>,
  options: {
    readonly concurrency?: number | undefined
    readonly failOnToolError?: boolean | undefined
    readonly onResult?: ((result: ToolMessage, call: ToolCall) => void) | undefined
    readonly onStart?: ((call: ToolCall) => void) | undefined
    readonly final?: Effect.Effect<void> | undefined
  } = {}
): Effect.Effect<ReadonlyArray<ToolMessage>, ToolExecutionError, R> => {
  const runOne = (call: ToolCall): Effect.Effect<ToolMessage, ToolExecutionError, R> => {
    const { name, tool } = resolve(kit, call.name)
    const outcome: Effect.Effect<string, ToolExecutionError, R> = tool === undefined
      ? Effect.fail(
        new ToolExecutionError({
          toolCallId: call.id,
          name: call.name,
          reason: "unknown_tool",
          message: `unknown tool ${JSON.stringify(call.name)}; available: ${[...kit.tools.keys()].join(", ")}`
        })
      )
      : tool.run(call.arguments)
    const spanned = ToolSpans.traced(call, { name, description: tool?.definition.description }, outcome)
    // a tool that must finish runs to its result, and that result is seen, even when interrupted
    const mask = tool?.interruptible === false
      ? Effect.uninterruptible
      : <A, E, R>(self: Effect.Effect<A, E, R>) => self
    const started = options.onStart === undefined
      ? spanned
      : Effect.zipRight(Effect.sync(() => options.onStart!(call)), spanned)
    const answered = mask(started.pipe(
      // a call's id and name, and the content its tool encoded: nothing for the class to check again
      Effect.map((content) => new ToolMessage({ toolCallId: call.id, name, content }, true)),
      Effect.catchAll((error) =>
        options.failOnToolError
          ? Effect.fail(
            new ToolExecutionError({
              toolCallId: call.id,
              name: call.name,
              reason: error.reason,
              message: error.message
            })
          )
          : Effect.succeed(
            new ToolMessage({ toolCallId: call.id, name, content: error.message, isError: true }, true)
          )
      ),
      Effect.tap((result) =>
        options.onResult === undefined ? Effect.void : Effect.sync(() => options.onResult!(result, call))
      )
    ))
    // a side effect waits for the final turn outside the mask, so a speculation waiting there can be dropped
    const waits = options.final !== undefined && tool !== undefined &&
      (tool.waitForFinal ?? tool.interruptible === false)
    return waits ? Effect.zipRight(options.final!, answered) : answered
  }
  // one call (a step's usual) runs in this fiber: `forEach` with a concurrency forks a fiber for every element
  return calls.length === 1
    ? Effect.map(runOne(calls[0]!), (result) => [result])
    : Effect.forEach(calls, runOne, { concurrency: options.concurrency ?? 4 })
}

/**
 * Tool arguments nested deeper than this are refused before any tool runs (see `parseArguments`).
 *
 * @since 0.1.0
 */
export const maxArgumentsDepth = maxDepth

/** The error for a step whose tool calls cannot be run and sent back safely, if any. */
const unusableCalls = (llm: Llm.Service, calls: ReadonlyArray<ToolCall>): LlmResponseError | undefined => {
  const deep = calls.find((call) => nestsDeeperThan(call.arguments, maxArgumentsDepth))
  return deep === undefined ? undefined : responseError(
    { provider: llm.provider, model: llm.model },
    `tool call ${
      JSON.stringify(deep.name)
    } (${deep.id}): the arguments are nested deeper than ${maxArgumentsDepth} levels`
  )
}

const callOptions = <R>(kit: Toolkit<R>, options: RunOptions): CompletionOptions => {
  const { concurrency: _c, failOnToolError: _f, maxSteps: _m, silenceAfter: _s, ...rest } = options
  return { ...rest, tools: [...(options.tools ?? []), ...kit.definitions] }
}

/**
 * Warms the backend's prompt cache with the prefix `run` and `stream` will
 * send first: `messages` with the toolkit's tools and the options (see
 * `Llm.Service.warm`). `None` when the backend has no prompt cache to warm
 * or the options turn caching off.
 *
 * @since 0.1.0
 */
export const warm = <R>(
  messages: ReadonlyArray<Message>,
  kit: Toolkit<R>,
  options: RunOptions = {}
): Effect.Effect<Option.Option<CompletionResult>, LlmError, Llm> =>
  Effect.flatMap(Llm, (llm) =>
    llm.warm === undefined || options.promptCache === false
      ? Effect.succeed(Option.none())
      : Effect.map(llm.warm(messages, callOptions(kit, options)), Option.some))

/** The reply of a step cut off by `maxSteps`: its text, finish reason "length". */
const cutOff = (result: CompletionResult): CompletionResult =>
  new CompletionResult({ ...result, finishReason: "length" }, true)

/**
 * The tool loop: calls the model; if it asked for tools, appends its
 * tool-call message, runs the calls (in parallel, bounded), appends the
 * results and calls again, until it answers without tools or `maxSteps`
 * model calls were made. At `maxSteps` the last reply is returned with
 * finishReason "length" and its unanswered tool calls are not added, so the
 * history stays valid. Tool calls whose arguments nest deeper than
 * `maxArgumentsDepth` end the loop with `LlmResponseError`.
 *
 * @since 0.1.0
 */
export const run = <R>(
  messages: ReadonlyArray<Message>,
  kit: Toolkit<R>,
  options: RunOptions = {}
): Effect.Effect<RunResult, LlmError | ToolExecutionError, Llm | R> =>
  Effect.gen(function*() {
    const llm = yield* Llm
    const maxSteps = options.maxSteps ?? 5
    const added: Array<Message> = []
    const stepUsage: Array<Usage> = []
    const done = (result: CompletionResult, steps: number): RunResult => ({
      result,
      added,
      steps,
      usage: Usage.sum(stepUsage),
      stepUsage
    })
    for (let step = 1;; step++) {
      // read at every step: a toolkit's tools may change (an MCP server's list)
      const result = yield* llm.complete([...messages, ...added], callOptions(kit, options))
      stepUsage.push(Usage.billed(result))
      if (!result.hasToolCalls) {
        added.push(result.toMessage())
        return done(result, step)
      }
      if (step >= maxSteps) {
        if (result.content !== "") added.push(result.toMessage({ toolCalls: [] }))
        return done(cutOff(result), step)
      }
      const unusable = unusableCalls(llm, result.toolCalls)
      if (unusable !== undefined) return yield* Effect.fail(unusable)
      added.push(result.toMessage({ toolCalls: recorded(kit, result.toolCalls) }))
      for (const message of yield* execute(kit, result.toolCalls, options)) added.push(message)
    }
  })

/**
 * A stream of one `Silence` event of step `step`, `after` its start, unless
 * `spoke` (the step's first content event reached the consumer) completes
 * first; then it ends with nothing.
 */
const silenceTimer = (step: number, after: Duration.Duration, spoke: Deferred.Deferred<void>) =>
  Stream.unwrap(Effect.map(Clock.currentTimeMillis, (start) =>
    Stream.fromEffect(Effect.raceFirst(
      Effect.zipRight(
        Effect.sleep(after),
        Effect.map(Clock.currentTimeMillis, (now) =>
          Option.some<StreamEvent>(StreamEvent.Silence({ step, waitedMillis: now - start })))
      ),
      Effect.as(Deferred.await(spoke), Option.none<StreamEvent>())
    )).pipe(Stream.filterMap((event) =>
      event
    ))))

/**
 * The streaming tool loop: the events of every step stream through as they
 * arrive, and tool calls run between steps. Only the last step's `Finish` is
 * emitted. `onStep` sees the messages each completed step adds (for a
 * conversation to record them), `onEvent` every event of every step's model
 * call as it passes, in the loop's own bookkeeping, which runs where a
 * backend's stream decodes its events (a caller metering each step adds no
 * stage). With `final` (a speculative generation's),
 * calls of tools that wait for the final turn (`Tool.waitForFinal`) run
 * once it has completed; the others run at once.
 *
 * Progress events come between the model's: `ToolExecutionStart` as each
 * call's handler is about to run and `ToolExecutionEnd` as its result is
 * made, live, while the step's other calls still run (the call is the one
 * the history records, see `recorded`); and, with `silenceAfter`, `Silence`
 * when a step's model call has produced no content event that long after
 * the step started. A `silenceAfter` that is not a duration fails the
 * stream with `LlmInvalidRequestError`, nothing sent.
 *
 * @since 0.1.0
 */
export const stream = <R>(
  messages: ReadonlyArray<Message>,
  kit: Toolkit<R>,
  options: StreamOptions = {}
): Stream.Stream<StreamEvent, LlmError | ToolExecutionError, Llm | R> =>
  Projection.unwrap(Effect.map(Llm, (llm) => streamOn(llm, messages, kit, options)))

/**
 * `stream`'s options: `RunOptions`, and the hooks a conversation records a
 * turn with.
 *
 * @since 0.1.0
 */
export interface StreamOptions extends RunOptions {
  /** Sees the messages each completed step adds. */
  readonly onStep?: ((added: ReadonlyArray<Message>) => Effect.Effect<void>) | undefined
  /** A speculative generation's: calls of tools that wait for the final turn run once it completes. */
  readonly final?: Effect.Effect<void> | undefined
  /** Sees each event of each step as it passes (the model call's, every step's `Finish` included, and `Silence`). */
  readonly onEvent?: ((event: StreamEvent) => void) | undefined
}

/**
 * `stream` on the service given rather than the context's: its model calls
 * go to `llm`, and its tools run with `llm` as their `Llm`. For a caller that
 * wraps the service (a meter, a guard): providing it to the stream instead
 * would run every effect of the stream in that context, each network read's
 * wait included.
 *
 * @since 0.1.0
 */
export const streamOn = <R>(
  llm: Llm.Service,
  messages: ReadonlyArray<Message>,
  kit: Toolkit<R>,
  options: StreamOptions = {}
): Stream.Stream<StreamEvent, LlmError | ToolExecutionError, Exclude<R, Llm>> =>
  Projection.suspend(() => {
    const maxSteps = options.maxSteps ?? 5
    const problem = durationProblem(options.silenceAfter)
    if (problem !== undefined) {
      return Stream.fail(
        invalidRequest({ provider: llm.provider, model: llm.model }, `Toolkit.stream: silenceAfter ${problem}`)
      )
    }
    const silenceAfter = options.silenceAfter === undefined ? undefined : Duration.decode(options.silenceAfter)
    const onStep = options.onStep ?? (() => Effect.void)
    const onEvent = options.onEvent

    /**
     * Runs a step's calls, their start and end events streaming as they
     * happen; the step is recorded (`onStep`) when they are done, before the
     * stream ends. Barge-in while they run: the calls that finished (tools
     * that are not interruptible do) are recorded with their results; the
     * cancelled ones are left out, call and all.
     */
    const running = (reply: ReplyCollector, calls: ReadonlyArray<ToolCall>, done: (added: Array<Message>) => void) =>
      StreamOps.unwrapScoped(Effect.gen(function*() {
        const clock = yield* Effect.clock
        const box = StreamOps.mailbox<StreamEvent, ToolExecutionError>()
        const named = recorded(kit, calls)
        const startedAt = new Map<ToolCall, number>()
        const finished: Array<ToolMessage> = []
        const interrupted = () => {
          if (finished.length === 0) return Effect.void
          const ids = new Set(finished.map((result) => result.toolCallId))
          const kept = calls.filter((call) => ids.has(call.id))
          const ordered = kept.flatMap((call) => finished.filter((result) => result.toolCallId === call.id))
          const message = reply.message(recorded(kit, kept))
          return onStep([new AssistantMessage({ ...message, interrupted: true }, true), ...ordered])
        }
        yield* Effect.uninterruptibleMask((restore) =>
          restore(Effect.provideService(
            execute(kit, calls, {
              ...options,
              onStart: (call) => {
                startedAt.set(call, clock.unsafeCurrentTimeMillis())
                box.offer(StreamEvent.ToolExecutionStart({ toolCall: named[calls.indexOf(call)] ?? call }))
              },
              onResult: (result, call) => {
                finished.push(result)
                const durationMillis = clock.unsafeCurrentTimeMillis() - (startedAt.get(call) ?? 0)
                box.offer(
                  StreamEvent.ToolExecutionEnd({ toolCall: named[calls.indexOf(call)] ?? call, result, durationMillis })
                )
              }
            }),
            Llm,
            llm
          )).pipe(
            Effect.onInterrupt(interrupted),
            Effect.flatMap((results) => {
              const added = [reply.message(named), ...results]
              done(added)
              return onStep(added)
            }),
            // the step recorded (or its failure): the stream ends with it
            Effect.exit,
            Effect.map(box.end)
          )
        ).pipe(Effect.forkScoped)
        return box.stream
      }))

    const step = (
      history: ReadonlyArray<Message>,
      n: number
    ): Stream.Stream<StreamEvent, LlmError | ToolExecutionError, Exclude<R, Llm>> =>
      Projection.suspend(() => {
        const reply = new ReplyCollector()
        // read at every step: a toolkit's tools may change (an MCP server's list)
        const call = llm.stream(history, callOptions(kit, options))
        const spoke = silenceAfter === undefined ? undefined : Deferred.unsafeMake<void>(FiberId.none)
        let content = false
        // the step's bookkeeping runs where the call's events are decoded (a stage only for the silence timer's merge)
        const events = Projection.mapEvents(
          spoke === undefined
            ? call
            : Stream.merge(call, silenceTimer(n, silenceAfter!, spoke), { haltStrategy: "left" }),
          (batch) => {
            const out: Array<StreamEvent> = []
            for (const event of batch) {
              onEvent?.(event)
              if (event._tag === "Silence") {
                // the timer may fire as the first content arrives: silence is only silence before it
                if (!content) out.push(event)
                continue
              }
              reply.push(event)
              if (event._tag === "Finish") continue
              if (!content && spoke !== undefined) Deferred.unsafeDone(spoke, Exit.void)
              content = true
              out.push(event)
            }
            return out
          }
        )
        const next = Projection.unwrap(Effect.gen(function*() {
          const calls = reply.toolCalls
          const finish = reply.finish
          if (calls.length === 0 || n >= maxSteps) {
            const added = reply.content === "" && calls.length > 0 ? [] : [reply.message([])]
            yield* onStep(added)
            if (finish === undefined) return Stream.empty
            return Projection.make(
              calls.length > 0 ? StreamEvent.Finish({ ...finish, finishReason: "length" }) : finish
            )
          }
          const unusable = unusableCalls(llm, calls)
          if (unusable !== undefined) return yield* Effect.fail(unusable)
          let added: ReadonlyArray<Message> = []
          return Projection.concat(
            running(reply, calls, (messages) => (added = messages)),
            Projection.suspend(() => step([...history, ...added], n + 1))
          )
        }))
        return Projection.concat(events, next)
      })
    return step(messages, 1)
  })

/**
 * What `generateObject` produced: the value, and every message the loop
 * added (tool steps, the answer, repairs), to append to the history.
 *
 * @since 0.1.0
 */
export interface ObjectRunResult<A> {
  readonly result: ObjectResult<A>
  /** The assistant, tool and repair messages added, in order. */
  readonly added: ReadonlyArray<Message>
  /** Model calls made, over every run of the loop. */
  readonly steps: number
}

/**
 * The tool loop answering with a value of `schema`: each model call carries
 * the Schema's response format, so the model may call tools first and then
 * answer with the value (on Anthropic, with the output tool among the
 * toolkit's). The final reply is decoded as by `Llm.generateObject`; with
 * `repair`, an invalid one is sent back and the loop runs again (and may call
 * tools again).
 *
 * @since 0.1.0
 */
export const generateObject = <A, I, R>(
  messages: ReadonlyArray<Message>,
  kit: Toolkit<R>,
  schema: Schema.Schema<A, I, never>,
  options: RunOptions & ObjectOptions = {}
): Effect.Effect<ObjectRunResult<A>, LlmError | LlmOutputError | ToolExecutionError, Llm | R> =>
  Effect.flatMap(Llm, (llm) => {
    let steps = 0
    const loop: { readonly maxSteps?: number; readonly concurrency?: number; readonly failOnToolError?: boolean } = {
      ...(options.maxSteps === undefined ? {} : { maxSteps: options.maxSteps }),
      ...(options.concurrency === undefined ? {} : { concurrency: options.concurrency }),
      ...(options.failOnToolError === undefined ? {} : { failOnToolError: options.failOnToolError })
    }
    return Effect.map(
      Structured.generateWith(
        Structured.contextOf(llm),
        (history, call) =>
          Effect.map(run(history, kit, { ...loop, ...call }), (outcome) => {
            steps += outcome.steps
            return outcome
          }),
        messages,
        schema,
        options
      ),
      ({ added, object }) => ({ result: object, added, steps })
    )
  })
