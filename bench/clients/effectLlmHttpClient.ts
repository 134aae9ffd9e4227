/**
 * A reference, not a peer: effect-llm sending through `@effect/platform`'s
 * `HttpClient` (`HttpTransport.layerHttpClient` on `NodeHttpClient.layerUndici`)
 * instead of its default transport. It shows what that choice costs.
 */
import * as NodeHttpClient from "@effect/platform-node/NodeHttpClient"
import * as Layer from "effect/Layer"
import { HttpTransport } from "../../src/index.js"
import type { BenchClient, Target } from "../client.js"
import { makeWith } from "./effectLlm.js"

export default (target: Target): BenchClient =>
  makeWith(target, Layer.provide(HttpTransport.layerHttpClient, NodeHttpClient.layerUndici))
