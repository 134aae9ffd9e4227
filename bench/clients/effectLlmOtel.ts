/**
 * A reference, not a peer: effect-llm (the same client as `effectLlm.ts`) with
 * the OpenTelemetry SDK's tracer installed through `@effect/opentelemetry`,
 * every span recorded and none exported (a no-op span processor). Next to the
 * effect-llm column, which runs under Effect's built-in tracer (no span is
 * made), it shows what tracing costs when it is on.
 */
import * as NodeSdk from "@effect/opentelemetry/NodeSdk"
import { NoopSpanProcessor } from "@opentelemetry/sdk-trace-base"
import type { BenchClient, Target } from "../client.js"
import { makeWith } from "./effectLlm.js"

export default (target: Target): BenchClient =>
  makeWith(target, NodeSdk.layer(() => ({ spanProcessor: new NoopSpanProcessor() })))
