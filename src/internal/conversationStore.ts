/** Where a conversation is kept between turns (this process, or Redis when `SharedState` is), committed a whole turn at a time under a version number. */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import type * as ParseResult from "effect/ParseResult"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import type { Redis } from "ioredis"
import { ConversationContext, type CountTokens } from "../Context.js"
import type { LlmInvalidRequestError } from "../errors.js"
import type { Message } from "../Message.js"
import * as SharedState from "../SharedState.js"
import { invalidRequest } from "./errorFactory.js"
import type { RedisConnection } from "./redisConnection.js"
import { durationProblem } from "./validate.js"

/** What is stored of a conversation: its context (history, system message, limits) and its prompt-cache key. */
export class StoredConversation extends Schema.Class<StoredConversation>("effect-llm/StoredConversation")({
  context: ConversationContext,
  promptCacheKey: Schema.optional(Schema.String)
}) {}

/** A stored conversation as the JSON text Redis holds, through the message schemas. */
const StoredJson = Schema.parseJson(StoredConversation)
const encodeStored = Schema.encodeSync(StoredJson)
const decodeStored = Schema.decodeUnknownEither(StoredJson)

/** A store's answer to a read: nothing under the id, the version the reader has, or a newer one (undefined: unreadable). */
type Read =
  | { readonly _tag: "Missing" }
  | { readonly _tag: "Unchanged" }
  | { readonly _tag: "Found"; readonly version: number; readonly record: StoredConversation | undefined }

/** A store's answer to a write: written as `version`, or refused because another writer moved it to `version` first. */
type Written =
  | { readonly _tag: "Written"; readonly version: number }
  | { readonly _tag: "Conflict"; readonly version: number; readonly record: StoredConversation | undefined }

/** A store: each operation answers `None` when the store cannot be reached (Redis down or slow). */
interface Store {
  readonly read: (id: string, known: number) => Effect.Effect<Option.Option<Read>>
  /** Writes when the stored version is `expected` (or nothing is stored, or `force`), as the next version. */
  readonly write: (
    id: string,
    expected: number,
    record: StoredConversation,
    force: boolean
  ) => Effect.Effect<Option.Option<Written>>
}

/** This process's conversations, by id, while a `Conversation` holds them. */
const memory = new Map<string, { version: number; record: StoredConversation | undefined; holders: number }>()

/** The memory store: a conversation lives as long as one `Conversation` with its id is open in this process. */
const memoryStore = (id: string): Effect.Effect<Store, never, Scope.Scope> =>
  Effect.as(
    Effect.acquireRelease(
      Effect.sync(() => {
        const entry = memory.get(id)
        if (entry === undefined) memory.set(id, { version: 0, record: undefined, holders: 1 })
        else entry.holders++
      }),
      () =>
        Effect.sync(() => {
          const entry = memory.get(id)
          if (entry !== undefined && --entry.holders === 0) memory.delete(id)
        })
    ),
    {
      read: (id, known) =>
        Effect.sync(() => {
          const entry = memory.get(id)
          return Option.some<Read>(
            entry?.record === undefined
              ? { _tag: "Missing" }
              : entry.version === known
              ? { _tag: "Unchanged" }
              : { _tag: "Found", version: entry.version, record: entry.record }
          )
        }),
      write: (id, expected, record, force) =>
        Effect.sync(() => {
          let entry = memory.get(id)
          if (entry === undefined) memory.set(id, entry = { version: 0, record: undefined, holders: 0 })
          if (entry.record !== undefined && !force && entry.version !== expected) {
            return Option.some<Written>({ _tag: "Conflict", version: entry.version, record: entry.record })
          }
          entry.version = Math.max(entry.version, expected) + 1
          entry.record = record
          return Option.some<Written>({ _tag: "Written", version: entry.version })
        })
    } satisfies Store
  )

/**
 * Reads a conversation: nothing (-1), the caller's version (0), or the newer version and its record.
 * KEYS[1] the conversation's hash (`v` version, `r` record); ARGV[1] the version the caller has.
 */
const readScript = `
local current = redis.call('HGET', KEYS[1], 'v')
if not current then return {-1} end
if current == ARGV[1] then return {0} end
return {tonumber(current), redis.call('HGET', KEYS[1], 'r')}
`

/**
 * Writes a conversation when its version is the expected one (or it is absent, or the write is forced), as
 * the next version, in one step: {1, version}; else {0, version, record}. ARGV: the expected version, the
 * record, its lifetime in ms (0: none), "1" to force.
 */
const writeScript = `
local current = redis.call('HGET', KEYS[1], 'v')
if current and ARGV[4] ~= '1' and current ~= ARGV[1] then
  return {0, tonumber(current), redis.call('HGET', KEYS[1], 'r')}
end
local version = math.max(tonumber(current or '0'), tonumber(ARGV[1])) + 1
redis.call('HSET', KEYS[1], 'v', version, 'r', ARGV[2])
if ARGV[3] == '0' then redis.call('PERSIST', KEYS[1]) else redis.call('PEXPIRE', KEYS[1], ARGV[3]) end
return {1, version}
`

/** The two scripts, as ioredis commands (sent by digest, and again whole after a restart forgot them). */
interface Scripts {
  readonly effectLlmConversationRead: (key: string, known: string) => Promise<ReadonlyArray<number | string | null>>
  readonly effectLlmConversationWrite: (
    key: string,
    expected: string,
    record: string,
    lifetime: string,
    force: string
  ) => Promise<ReadonlyArray<number | string | null>>
}

const defined = new WeakSet<Redis>()

/** The scripts on `client`, defined once per client. */
const scripts = (client: Redis): Scripts => {
  if (!defined.has(client)) {
    client.defineCommand("effectLlmConversationRead", { numberOfKeys: 1, lua: readScript })
    client.defineCommand("effectLlmConversationWrite", { numberOfKeys: 1, lua: writeScript })
    defined.add(client)
  }
  return client as unknown as Scripts
}

/** A stored record read back; undefined when it does not decode (written by something else). */
const recordOf = (text: unknown): StoredConversation | undefined => {
  const decoded = decodeStored(text)
  return decoded._tag === "Right" ? decoded.right : undefined
}

/** The Redis store: one hash per conversation under `conversation:<id>`, expiring `lifetime` ms after its last write. */
const redisStore = (connection: RedisConnection, lifetime: number): Store => {
  const key = (id: string) => connection.key("conversation", id)
  return {
    read: (id, known) =>
      Effect.map(
        connection.run((client) => scripts(client).effectLlmConversationRead(key(id), String(known))),
        Option.map((answer): Read =>
          answer[0] === -1
            ? { _tag: "Missing" }
            : answer[0] === 0
            ? { _tag: "Unchanged" }
            : { _tag: "Found", version: Number(answer[0]), record: recordOf(answer[1]) }
        )
      ),
    write: (id, expected, record, force) =>
      Effect.suspend(() => {
        const text = encodeStored(record)
        return Effect.map(
          connection.run((client) =>
            scripts(client).effectLlmConversationWrite(
              key(id),
              String(expected),
              text,
              String(lifetime),
              force ? "1" : "0"
            )
          ),
          Option.map((answer): Written =>
            answer[0] === 1
              ? { _tag: "Written", version: Number(answer[1]) }
              : { _tag: "Conflict", version: Number(answer[1]), record: recordOf(answer[2]) }
          )
        )
      })
  }
}

/** The messages of `context`'s newest turn: its last user message and what follows it. */
const newestTurn = (context: ConversationContext): ReadonlyArray<Message> => {
  const history = context.history
  for (let i = history.length - 1; i >= 0; i--) if (history[i]!.role === "user") return history.slice(i)
  return []
}

/** `turns` recorded after `base`'s history, pruned by `base`'s own limits. */
const rebase = (
  base: ConversationContext,
  turns: ReadonlyArray<ReadonlyArray<Message>>,
  count: CountTokens | undefined
): ConversationContext =>
  turns.length === 0
    ? base
    : new ConversationContext({ ...base, history: [...base.history, ...turns.flat()] }, true).pruneTo({}, count)

/** How a conversation uses the store. */
export interface Options {
  /** The prompt-cache key given (`false`: no caching); without one, the stored key or a new one. */
  readonly promptCacheKey: string | false | undefined
  /** How long Redis keeps a conversation after its last turn (default 24 hours; infinite: for ever). */
  readonly expiresAfter?: Duration.DurationInput | undefined
  /** The token counter the conversation prunes with. */
  readonly count?: CountTokens | undefined
  /** The backend, for the error a bad option gives. */
  readonly backend: { readonly provider: string; readonly model: string }
}

/** One conversation's place in the store, used under the conversation's own serialisation (its `SynchronizedRef`). */
export interface Handle {
  /** The prompt-cache key, kept with the conversation (undefined: caching off). */
  readonly promptCacheKey: string | undefined
  /**
   * The newest version: what another writer stored since, or this process's own (the same value when
   * unchanged, or when the store does not answer); first writes what this process recorded while it could not.
   */
  readonly latest: Effect.Effect<ConversationContext, LlmInvalidRequestError>
  /** This process's context, as last read or written. */
  readonly local: () => ConversationContext
  /**
   * Records a turn: `next` is the context with the turn recorded. Written in one step when no one else
   * wrote since; otherwise the turn is added after what they wrote. Gives the context to go on with.
   */
  readonly commit: (next: ConversationContext) => Effect.Effect<ConversationContext>
  /** Records the context a turn ended with (`commit`), unless it is `current`. */
  readonly record: (current: ConversationContext, next: ConversationContext) => Effect.Effect<ConversationContext>
  /** Replaces the conversation, whatever was stored. */
  readonly replace: (next: ConversationContext) => Effect.Effect<ConversationContext>
}

/** Most writes tried in a row when other writers keep moving the conversation on (then it is written at the next turn). */
const maxAttempts = 16

/**
 * Opens the conversation `id` in the store `SharedState` says (read now, once): the stored one when there is
 * one, else `initial`; while the store does not answer, this process's own.
 */
export const open = (
  id: string,
  initial: ConversationContext,
  options: Options
): Effect.Effect<Handle, never, Scope.Scope> =>
  Effect.gen(function*() {
    const problem = durationProblem(options.expiresAfter) ??
      (options.expiresAfter !== undefined && Duration.toMillis(Duration.decode(options.expiresAfter)) === 0
        ? "is zero: a conversation would be gone as soon as it is written"
        : undefined)
    const invalid = problem === undefined
      ? undefined
      : invalidRequest(options.backend, `Conversation: expiresAfter ${problem}`)
    const lifetime = invalid === undefined
      ? Duration.toMillis(Duration.decode(options.expiresAfter ?? "24 hours"))
      : 0
    const shared = yield* SharedState.current
    const store = shared._tag === "Redis"
      ? redisStore(shared.connection, Number.isFinite(lifetime) ? Math.ceil(lifetime) : 0)
      : yield* memoryStore(id)

    const first = yield* store.read(id, 0)
    const found = Option.isSome(first) && first.value._tag === "Found" && first.value.record !== undefined
      ? first.value as { readonly version: number; readonly record: StoredConversation }
      : undefined
    // the store's version `local` was last in step with, and what this process recorded since that is not stored
    let version = found?.version ?? 0
    let local = found?.record.context ?? initial
    let pending: Array<ReadonlyArray<Message>> = []
    let replaced = false
    const promptCacheKey = options.promptCacheKey === false
      ? undefined
      : options.promptCacheKey ?? found?.record.promptCacheKey ?? (yield* Effect.sync(() => crypto.randomUUID()))

    const record = () =>
      new StoredConversation({ context: local, ...(promptCacheKey === undefined ? {} : { promptCacheKey }) }, true)

    /** Writes what is not stored yet, adding it after what others wrote meanwhile. */
    const flush = Effect.gen(function*() {
      for (let attempt = 0; attempt < maxAttempts; attempt++) {
        const answer = yield* store.write(id, version, record(), replaced)
        if (Option.isNone(answer)) return
        const written = answer.value
        version = written.version
        if (written._tag === "Written") {
          pending = []
          replaced = false
          return
        }
        // another writer's turn came first: ours go after it; an unreadable record is replaced at the next write
        if (written.record !== undefined) local = rebase(written.record.context, pending, options.count)
        else {
          yield* Effect.logWarning(
            `effect-llm: the stored conversation ${
              JSON.stringify(id)
            } does not decode as a conversation; it is replaced by this process's`
          )
        }
      }
    })

    const latest = Effect.gen(function*() {
      if (invalid !== undefined) return yield* Effect.fail(invalid)
      if (pending.length > 0 || replaced) {
        yield* flush
        return local
      }
      const answer = yield* store.read(id, version)
      if (Option.isSome(answer) && answer.value._tag === "Found" && answer.value.record !== undefined) {
        version = answer.value.version
        local = answer.value.record.context
      }
      return local
    })

    const commit = (next: ConversationContext) =>
      Effect.suspend(() => {
        if (invalid !== undefined) return Effect.succeed(next)
        pending.push(newestTurn(next))
        local = next
        return Effect.map(flush, () => local)
      })

    return {
      promptCacheKey,
      latest,
      local: () => local,
      commit,
      record: (current, next) => (next === current ? Effect.succeed(current) : commit(next)),
      replace: (next) =>
        Effect.suspend(() => {
          local = next
          pending = []
          replaced = true
          return Effect.map(invalid === undefined ? flush : Effect.void, () => local)
        })
    } satisfies Handle
  })

/** Decodes a stored record (for tests that read Redis directly). */
export const decode = (text: string): Effect.Effect<StoredConversation, ParseResult.ParseError> =>
  Schema.decodeUnknown(StoredJson)(text)
