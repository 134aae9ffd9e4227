/**
 * Structured output over any `Llm`: the call with the Schema's response
 * format, the reply's text decoded by the Schema (refusals, truncation and
 * invalid values as `LlmOutputError`), repairs, and the object stream
 * (partial values from the incremental parser, elements, the decoded value).
 * The tool loop reuses `generateWith` with its own step.
 */
import * as Channel from "effect/Channel"
import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as ParseResult from "effect/ParseResult"
import * as Schema from "effect/Schema"
import * as SchemaAST from "effect/SchemaAST"
import * as Stream from "effect/Stream"
import { type LlmError, LlmOutputError } from "../errors.js"
import type { CompletionOptions, Llm } from "../Llm.js"
import { type Message, user } from "../Message.js"
import { type CompletionResult, type StreamEvent, Usage } from "../Reply.js"
import {
  type ObjectCallOptions,
  type ObjectOptions,
  ObjectResult,
  type ObjectStreamEvent,
  type ObjectStreamOptions
} from "../StructuredOutput.js"
import { type ErrorContext, invalidRequest, responseError } from "./errorFactory.js"
import { type OutputSchema, prepare, wrapperKey } from "./outputSchema.js"
import { PartialJson } from "./partialJson.js"
import * as Projection from "./projection.js"
import { ReplyCollector } from "./replyCollector.js"
import { isNonNegativeInteger } from "./validate.js"

/** Why a reply gave no value: what `LlmOutputError` will say. */
interface Failure {
  readonly reason: "invalid" | "refused" | "truncated"
  readonly issue?: string | undefined
}

/** The JSON of a reply's text (a markdown code fence around it is taken off), or why it is not JSON. */
const parseJson = (text: string): { readonly json: unknown } | { readonly issue: string } => {
  let body = text.trim()
  if (body.startsWith("```")) {
    const open = body.indexOf("\n")
    body = open < 0 ? "" : body.slice(open + 1).replace(/```\s*$/, "").trim()
  }
  if (body === "") return { issue: "the reply has no text" }
  try {
    return { json: JSON.parse(body) }
  } catch (cause) {
    return { issue: `the reply is not JSON: ${cause instanceof Error ? cause.message : String(cause)}` }
  }
}

/** The value of a reply, or why there is none. */
const valueOf = <A, I>(output: OutputSchema<A, I>, reply: CompletionResult): { readonly value: A } | Failure => {
  if (reply.finishReason === "content_filter") return { reason: "refused" }
  if (reply.hasToolCalls) {
    return {
      reason: "invalid",
      issue: `the reply calls tools (${
        reply.toolCalls.map((call) => call.name).join(", ")
      }) instead of giving the value (Toolkit.generateObject runs tools, up to its maxSteps)`
    }
  }
  const parsed = parseJson(reply.content)
  if ("issue" in parsed) {
    return reply.finishReason === "length"
      ? { reason: "truncated" }
      : { reason: "invalid", ...parsed }
  }
  const decoded = Schema.decodeUnknownEither(output.schema, { errors: "all" })(output.read(parsed.json))
  if (Either.isRight(decoded)) return { value: decoded.right }
  return { reason: "invalid", issue: ParseResult.TreeFormatter.formatErrorSync(decoded.left) }
}

const explanations: Readonly<Record<Failure["reason"], string>> = {
  invalid: "the reply is not a value of the Schema",
  refused: "the model refused to answer",
  truncated: "the reply stopped at the output limit before its value was complete"
}

/** The error for a reply that gave no value. */
const outputError = (context: ErrorContext, text: string, failure: Failure, attempts: number): LlmOutputError =>
  new LlmOutputError({
    provider: context.provider,
    model: context.model,
    message: `${context.provider} (${context.model}): ${explanations[failure.reason]}${
      failure.issue === undefined ? "" : `: ${failure.issue}`
    }`,
    reason: failure.reason,
    text,
    ...(failure.issue === undefined ? {} : { issue: failure.issue }),
    attempts
  })

/** The tokens of two calls together. */
const plus = (a: Usage, b: Usage): Usage => {
  const sum = (x: number | undefined, y: number | undefined) =>
    x === undefined && y === undefined ? undefined : (x ?? 0) + (y ?? 0)
  const cached = sum(a.cachedInputTokens, b.cachedInputTokens)
  const written = sum(a.cacheWriteInputTokens, b.cacheWriteInputTokens)
  const reasoning = sum(a.reasoningTokens, b.reasoningTokens)
  return new Usage({
    inputTokens: a.inputTokens + b.inputTokens,
    outputTokens: a.outputTokens + b.outputTokens,
    totalTokens: a.totalTokens + b.totalTokens,
    ...(cached === undefined ? {} : { cachedInputTokens: cached }),
    ...(written === undefined ? {} : { cacheWriteInputTokens: written }),
    ...(reasoning === undefined ? {} : { reasoningTokens: reasoning })
  }, true)
}

/** What the model is told when its reply was not a value of the Schema. */
const correction = (issue: string | undefined): string =>
  `Your reply is not a valid value of the JSON Schema asked for${
    issue === undefined ? "" : `:\n${issue}`
  }\nReply again with only the corrected JSON value.`

/** The completion options of a structured call, the response format set. */
const callOptions = <A, I>(output: OutputSchema<A, I>, options: ObjectCallOptions): CompletionOptions => {
  const { description: _d, name: _n, ...rest } = options as ObjectCallOptions & {
    readonly repair?: unknown
    readonly elements?: unknown
  }
  const { elements: _e, repair: _r, ...completion } = rest
  return { ...completion, responseFormat: output.format }
}

/** The Schema prepared, or the error of a call that cannot be made. */
const prepared = <A, I>(
  context: ErrorContext,
  schema: Schema.Schema<A, I, never>,
  options: ObjectCallOptions
): Either.Either<OutputSchema<A, I>, LlmError> => {
  const output = prepare(schema, options)
  return typeof output === "string" ? Either.left(invalidRequest(context, output)) : Either.right(output)
}

/**
 * One step of a structured call: the reply to `messages`, and the messages
 * it adds to the history (the tool loop's calls and results, then the
 * reply's own message).
 *
 * @internal
 */
export type Step<E, R> = (
  messages: ReadonlyArray<Message>,
  options: CompletionOptions
) => Effect.Effect<{ readonly result: CompletionResult; readonly added: ReadonlyArray<Message> }, E, R>

/**
 * A structured call made of `step`s: the value of the Schema and every
 * message the steps added (repairs included), or `LlmOutputError` once the
 * repairs are spent.
 *
 * @internal
 */
export const generateWith = <A, I, E, R>(
  context: ErrorContext,
  step: Step<E, R>,
  messages: ReadonlyArray<Message>,
  schema: Schema.Schema<A, I, never>,
  options: ObjectOptions
): Effect.Effect<
  { readonly object: ObjectResult<A>; readonly added: ReadonlyArray<Message> },
  E | LlmError | LlmOutputError,
  R
> =>
  Effect.gen(function*() {
    const repair = options.repair ?? 0
    if (!isNonNegativeInteger(repair)) {
      return yield* Effect.fail(invalidRequest(context, `repair must be a non-negative integer, got ${String(repair)}`))
    }
    const output = yield* prepared(context, schema, options)
    const call = callOptions(output, options)
    const added: Array<Message> = []
    let usage: Usage | undefined
    for (let attempt = 1;; attempt++) {
      const { added: stepAdded, result } = yield* step([...messages, ...added], call)
      usage = usage === undefined ? result.usage : plus(usage, result.usage)
      for (const message of stepAdded) added.push(message)
      const read = valueOf(output, result)
      if ("value" in read) {
        return { object: new ObjectResult({ value: read.value, completion: result, usage, attempts: attempt }), added }
      }
      const answered = { ...context, provider: result.metadata.provider, model: result.model }
      if (read.reason !== "invalid" || attempt > repair || result.hasToolCalls) {
        return yield* Effect.fail(outputError(answered, result.content, read, attempt))
      }
      added.push(user(correction(read.issue)))
    }
  })

/** The error context of calls to `llm`. */
export const contextOf = (llm: Llm.Service): ErrorContext => ({ provider: llm.provider, model: llm.model })

/**
 * `Llm.generateObject`: one call (and its repairs) with the Schema's response format.
 *
 * @internal
 */
export const generate = <A, I>(
  llm: Llm.Service,
  messages: ReadonlyArray<Message>,
  schema: Schema.Schema<A, I, never>,
  options: ObjectOptions
): Effect.Effect<ObjectResult<A>, LlmError | LlmOutputError> =>
  Effect.map(
    generateWith(
      contextOf(llm),
      (history, call) => Effect.map(llm.complete(history, call), (result) => ({ result, added: [result.toMessage()] })),
      messages,
      schema,
      options
    ),
    ({ object }) => object
  )

/** The Schema of an array Schema's elements (refinements and suspensions looked through), if it is one. */
const elementSchema = (ast: SchemaAST.AST): Schema.Schema<unknown, unknown, never> | undefined => {
  let node = ast
  for (let depth = 0; depth < 16; depth++) {
    if (SchemaAST.isRefinement(node)) node = node.from
    else if (SchemaAST.isSuspend(node)) node = node.f()
    else break
  }
  if (!SchemaAST.isTupleType(node) || node.elements.length > 0 || node.rest.length !== 1) return undefined
  return Schema.make(node.rest[0]!.type) as Schema.Schema<unknown, unknown, never>
}

/**
 * `Llm.streamObject`: the reply streamed with the Schema's response format,
 * as partial values (or elements) and last the decoded value. Each batch of
 * the backend's events is read into the parser and gives at most one
 * partial, only when the value received changed: partials where the backend
 * decodes the events (in one stage on a stream that carries no projection),
 * elements in one stage (their Schema may fail the stream after the batch's
 * events before it).
 *
 * @internal
 */
export const streamWith = <A, I, E, R>(
  context: ErrorContext,
  events: (options: CompletionOptions) => Stream.Stream<StreamEvent, E, R>,
  schema: Schema.Schema<A, I, never>,
  options: ObjectStreamOptions
): Stream.Stream<ObjectStreamEvent<A, I>, E | LlmError | LlmOutputError, R> =>
  Stream.suspend(() => {
    const prepare = prepared(context, schema, options)
    if (Either.isLeft(prepare)) return Stream.fail(prepare.left)
    const output = prepare.right
    const element = options.elements === true ? elementSchema(schema.ast) : undefined
    if (options.elements === true && element === undefined) {
      return Stream.fail(invalidRequest(context, "the elements option needs an array Schema (Schema.Array(…))"))
    }
    const decodeElement = element === undefined ? undefined : Schema.decodeUnknownEither(element, { errors: "all" })
    const parser = new PartialJson(element === undefined ? undefined : output.wrapped ? [wrapperKey] : [])
    const reply = new ReplyCollector()
    let emitted: unknown = undefined
    let snapshot: unknown = undefined
    /**
     * Adds the partial value when it changed: the parser gives the same
     * snapshot while nothing visible changed, so only a value read with
     * dropped nulls is compared whole.
     */
    const pushPartial = (out: Array<ObjectStreamEvent<A, I>>): void => {
      const next = parser.snapshot()
      if (next === snapshot) return
      snapshot = next
      const partial = output.read(next)
      if (partial === undefined || partial === emitted || (output.restores && sameValue(partial, emitted))) return
      emitted = partial
      out.push({ _tag: "Partial", partial: partial as never })
    }
    let index = 0
    /** An element that failed its Schema: the stream fails after the events before it. */
    let failure: LlmOutputError | undefined
    /** The events of one batch (up to an element that fails its Schema). */
    const read = (batch: Iterable<StreamEvent>): Array<ObjectStreamEvent<A, I>> => {
      for (const event of batch) {
        reply.push(event)
        if (event._tag === "TextDelta") parser.feed(event.text)
      }
      const out: Array<ObjectStreamEvent<A, I>> = []
      if (decodeElement !== undefined) {
        for (const raw of parser.takeElements()) {
          const decoded = decodeElement(output.readElement(raw))
          if (Either.isLeft(decoded)) {
            const issue = `element ${index}: ${ParseResult.TreeFormatter.formatErrorSync(decoded.left)}`
            failure = outputError(context, reply.content, { reason: "invalid", issue }, 1)
            return out
          }
          out.push({ _tag: "Element", index: index++, element: decoded.right as never })
        }
        return out
      }
      pushPartial(out)
      return out
    }
    const finish = (): Array<ObjectStreamEvent<A, I>> | LlmOutputError | LlmError => {
      parser.end()
      const result = reply.result()
      if (result === undefined) return responseError(context, "the stream ended without a Finish event")
      const answered = { ...context, provider: result.metadata.provider, model: result.model }
      const value = valueOf(output, result)
      if (!("value" in value)) return outputError(answered, result.content, value, 1)
      const out: Array<ObjectStreamEvent<A, I>> = []
      if (decodeElement === undefined) pushPartial(out)
      out.push({
        _tag: "Done",
        result: new ObjectResult({ value: value.value, completion: result, usage: result.usage, attempts: 1 })
      })
      return out
    }
    const write = (out: Array<ObjectStreamEvent<A, I>> | LlmOutputError | LlmError) =>
      Array.isArray(out)
        ? out.length === 0 ? Channel.void : Channel.write(Chunk.unsafeFromArray(out))
        : Channel.fail(out)
    const loop: Channel.Channel<
      Chunk.Chunk<ObjectStreamEvent<A, I>>,
      Chunk.Chunk<StreamEvent>,
      E | LlmOutputError | LlmError,
      E,
      unknown,
      unknown
    > = Channel.readWithCause({
      onInput: (chunk: Chunk.Chunk<StreamEvent>) => {
        const out = read(chunk)
        const next = failure === undefined ? loop : Channel.fail(failure)
        return out.length === 0 ? next : Channel.zipRight(write(out), next)
      },
      onFailure: Channel.failCause,
      onDone: () => write(finish())
    })
    const replied = events(callOptions(output, options))
    // partials never fail mid-stream: they are read where the backend decodes its events (else in one
    // stage), the value after the reply
    if (decodeElement === undefined) {
      return Stream.concat(
        Projection.project(replied, read),
        Stream.suspend(() => {
          const out = finish()
          return Array.isArray(out) ? Stream.fromIterable(out) : Stream.fail(out)
        })
      )
    }
    return Stream.pipeThroughChannel(replied, loop)
  })

/** Whether two JSON values are equal (shared subtrees compared by reference first). */
const sameValue = (a: unknown, b: unknown): boolean => {
  if (a === b) return true
  if (typeof a !== "object" || typeof b !== "object" || a === null || b === null) return false
  if (Array.isArray(a)) {
    if (!Array.isArray(b) || a.length !== b.length) return false
    for (let i = 0; i < a.length; i++) if (!sameValue(a[i], b[i])) return false
    return true
  }
  if (Array.isArray(b)) return false
  const keys = Object.keys(a)
  if (keys.length !== Object.keys(b).length) return false
  for (const key of keys) {
    if (
      !Object.hasOwn(b, key) || !sameValue((a as Record<string, unknown>)[key], (b as Record<string, unknown>)[key])
    ) {
      return false
    }
  }
  return true
}
