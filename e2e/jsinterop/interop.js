#!/usr/bin/env node
// Interoperability check: drives a running Durable Functions for Go app
// through its management API with the real JavaScript DurableClient of the
// npm package durable-functions (v3, pinned in package.json).
//
//   node e2e/jsinterop/interop.js http://127.0.0.1:7071/api/durabletask/
//
// The app must register the e2e test app's orchestrators (e2e/testapp):
// Waiter waits for the event "Go" and returns its payload; Echo returns its
// input; the entity Counter adds (add), resets (reset). The script runs the same scenario twice, once per way the client
// can be configured:
//
//   rpc        binding with rpcBaseUrl = <base> (the extension's local RPC
//              endpoint mode: URLs built with new URL("instances/...", base));
//   templates  binding with creationUrls/managementUrls templates (the legacy
//              webhook mode), made from a real check-status response of the
//              app with its instance ID replaced by a placeholder. Its
//              statusQueryGetUri template also carries top=2 (a list
//              parameter of the API the client never sets itself) so that
//              getStatusAll/getStatusBy have to follow
//              x-ms-continuation-token over several pages.
//
// The rewind step needs the environment variable CRASHTEST_DIR set to the
// app's CRASHTEST_DIR: the test app's Flaky orchestrator fails until a file
// "heal" exists there. Without it the step is reported as "skip" (and the Go
// test, which expects "ok", fails).
//
// It prints one line per step, "ok <mode> <step>[: detail]", and at the end
// "PASS". On the first failure it prints "FAIL <mode> <step>: <reason>" and
// the last HTTP exchanges, and exits with status 1 (2 for bad usage or a
// missing package).
"use strict";

const assert = require("node:assert/strict");
const fs = require("node:fs");
const path = require("node:path");

const DF_PACKAGE = "durable-functions";
let DurableClient, EntityId, dfVersion;
try {
    // The package has no "exports" map, so the class can be required directly
    // and constructed with a binding object, without a Functions host.
    ({ DurableClient } = require(`${DF_PACKAGE}/lib/src/durableClient/DurableClient`));
    ({ EntityId } = require(`${DF_PACKAGE}/lib/src/entities/EntityId`));
    dfVersion = require(`${DF_PACKAGE}/package.json`).version;
} catch (err) {
    console.error(
        `FAIL setup: cannot load ${DF_PACKAGE} (${err.message}); run "npm ci" in the module root`,
    );
    process.exit(2);
}
if (typeof DurableClient !== "function") {
    console.error(`FAIL setup: ${DF_PACKAGE}@${dfVersion} has no DurableClient class`);
    process.exit(2);
}

const args = process.argv.slice(2);
if (args.length !== 1 || !/^https?:\/\//.test(args[0])) {
    console.error("usage: node interop.js <management API base URL, e.g. http://127.0.0.1:7071/api/durabletask/>");
    process.exit(2);
}
const base = args[0].endsWith("/") ? args[0] : args[0] + "/";

const WAIT_MS = 30000; // longest wait for an instance to reach a status
const POLL_MS = 50;

// ---- reporting ---------------------------------------------------------

let currentMode = "setup";
let currentStep = "start";
const exchanges = []; // recent HTTP exchanges of the client under test

function ok(detail) {
    console.log(`ok ${currentMode} ${currentStep}${detail === undefined ? "" : ": " + detail}`);
}

function fail(err) {
    let msg = err && err.message !== undefined ? err.message : String(err);
    if (err && typeof err.stack === "string") {
        // Keep the frames of this script: they show which check failed.
        const frames = err.stack.split("\n").filter((l) => l.includes(__filename));
        if (frames.length > 0) {
            msg += "\n" + frames.join("\n");
        }
    }
    console.log(`FAIL ${currentMode} ${currentStep}: ${msg}`);
    if (exchanges.length > 0) {
        console.log("last HTTP exchanges of the DurableClient:");
        for (const e of exchanges.slice(-8)) {
            console.log("  " + e);
        }
    }
    process.exit(1);
}

process.on("unhandledRejection", fail);

async function step(name, fn) {
    currentStep = name;
    const detail = await fn();
    ok(detail);
}

// record logs the requests and responses of a DurableClient's axios
// instance (observation only: they go out unchanged).
function record(client) {
    const ax = client.axiosInstance;
    assert.ok(ax && ax.interceptors, "DurableClient.axiosInstance is not an axios instance");
    ax.interceptors.response.use((resp) => {
        const token = resp.config.headers && resp.config.headers["x-ms-continuation-token"];
        const next = resp.headers["x-ms-continuation-token"];
        exchanges.push(
            `${resp.config.method.toUpperCase()} ${resp.config.url}` +
                (token ? ` [x-ms-continuation-token: ${token}]` : "") +
                ` -> ${resp.status}` +
                (next ? ` [next: ${next}]` : "") +
                ` ${JSON.stringify(resp.data)}`.slice(0, 400),
        );
        return resp;
    });
}

// requestsSince returns the exchanges recorded after mark.
function requestsSince(mark) {
    return exchanges.slice(mark);
}

// ---- helpers -------------------------------------------------------------

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// waitFor polls getStatus until the instance has the wanted runtime status.
// waitForEntity polls readEntityState until the entity exists with state want.
async function waitForEntity(client, id, want) {
    const deadline = Date.now() + WAIT_MS;
    let last;
    for (;;) {
        last = await client.readEntityState(id);
        if (last.entityExists && last.entityState === want) {
            return last;
        }
        if (Date.now() > deadline) {
            throw new Error(`entity ${id.name}/${id.key} did not reach state ${want} within ${WAIT_MS} ms; last ${JSON.stringify(last)}`);
        }
        await sleep(POLL_MS);
    }
}

async function waitFor(client, id, want) {
    const deadline = Date.now() + WAIT_MS;
    let last;
    for (;;) {
        last = await client.getStatus(id);
        if (last.runtimeStatus === want) {
            return last;
        }
        if (Date.now() > deadline) {
            throw new Error(`instance ${id} did not become ${want} within ${WAIT_MS} ms; last status ${JSON.stringify(last)}`);
        }
        await sleep(POLL_MS);
    }
}

// rejects checks that promise rejects with a message matching pattern and
// returns a short description: the HTTP status and the API's error code
// when the message carries them, else the message.
async function rejects(promise, pattern, what) {
    let result;
    try {
        result = await promise;
    } catch (err) {
        const msg = String(err && err.message);
        assert.match(msg, pattern, `${what}: unexpected error`);
        const m = /status code: (\d+)\. Details: (.*)$/s.exec(msg);
        if (m) {
            try {
                return `${m[1]} ${JSON.parse(m[2]).error.code}`;
            } catch {
                return m[1];
            }
        }
        const last = /-> (\d+)/.exec(exchanges[exchanges.length - 1] || "");
        return last ? `HTTP ${last[1]}, message ${JSON.stringify(msg)}` : msg;
    }
    throw new Error(`${what}: expected a rejection matching ${pattern}, got ${JSON.stringify(result)}`);
}

function checkStatusShape(st) {
    for (const k of ["name", "instanceId", "runtimeStatus"]) {
        assert.equal(typeof st[k], "string", `status.${k} is not a string: ${JSON.stringify(st)}`);
    }
    for (const k of ["createdTime", "lastUpdatedTime"]) {
        assert.ok(st[k] instanceof Date && !isNaN(st[k]), `status.${k} is not a valid date: ${st[k]}`);
    }
    assert.ok(st.lastUpdatedTime >= st.createdTime, "lastUpdatedTime is before createdTime");
    assert.ok("input" in st && "output" in st && "customStatus" in st, "status lacks input/output/customStatus");
}

function checkListShape(list, what) {
    assert.ok(Array.isArray(list), `${what} did not return an array: ${JSON.stringify(list)}`);
    for (const st of list) {
        for (const k of ["name", "instanceId", "runtimeStatus", "createdTime", "lastUpdatedTime"]) {
            assert.equal(typeof st[k], "string", `${what}: item.${k} is not a string: ${JSON.stringify(st)}`);
        }
        assert.ok(!("historyEvents" in st), `${what}: list items carry historyEvents`);
    }
    const ids = list.map((s) => s.instanceId);
    assert.equal(new Set(ids).size, ids.length, `${what} returned duplicates: ${ids}`);
    return ids;
}

// ---- the two client configurations -------------------------------------

function rpcClient() {
    // Only rpcBaseUrl matters in this mode; the template objects must exist.
    return new DurableClient({
        taskHubName: "unused",
        creationUrls: {},
        managementUrls: {},
        baseUrl: "",
        requiredQueryStringParameters: "",
        rpcBaseUrl: base,
    });
}

// templatesClient builds the legacy binding from a real check-status
// response of the app, as the Durable extension would.
async function templatesClient() {
    const resp = await fetch(`${base}orchestrators/Echo`, {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify("template probe"),
    });
    const text = await resp.text();
    assert.equal(resp.status, 202, `POST ${base}orchestrators/Echo: ${resp.status} ${text}`);
    const links = JSON.parse(text);
    const id = links.id;
    assert.ok(typeof id === "string" && id.length > 0, `check-status response without id: ${text}`);
    const placeholder = "INSTANCEID";
    const managementUrls = {};
    for (const [k, v] of Object.entries(links)) {
        assert.equal(typeof v, "string", `check-status field ${k} is not a string`);
        managementUrls[k] = v.split(id).join(placeholder);
    }
    for (const k of [
        "statusQueryGetUri", "sendEventPostUri", "terminatePostUri", "rewindPostUri",
        "purgeHistoryDeleteUri", "restartPostUri", "suspendPostUri", "resumePostUri",
    ]) {
        assert.ok(managementUrls[k] && managementUrls[k].includes(placeholder), `check-status lacks ${k}: ${text}`);
    }
    assert.ok(managementUrls.statusQueryGetUri.includes("?"), "statusQueryGetUri has no query string; the client appends &k=v to it");
    assert.ok(managementUrls.terminatePostUri.includes("{text}"), "terminatePostUri lacks the {text} placeholder");
    assert.ok(managementUrls.sendEventPostUri.includes("{eventName}"), "sendEventPostUri lacks the {eventName} placeholder");
    managementUrls.statusQueryGetUri += "&top=2"; // force paging of list calls
    const query = new URL(links.statusQueryGetUri).search; // ?taskHub=..&connection=..
    const taskHubName = new URL(links.statusQueryGetUri).searchParams.get("taskHub");
    assert.ok(taskHubName, `statusQueryGetUri has no taskHub: ${links.statusQueryGetUri}`);
    const client = new DurableClient({
        taskHubName,
        creationUrls: {
            createNewInstancePostUri: `${base}orchestrators/{functionName}[/{instanceId}]${query}`,
            createAndWaitOnNewInstancePostUri:
                `${base}orchestrators/{functionName}[/{instanceId}]${query}&timeout={timeoutInSeconds}&pollingInterval={intervalInSeconds}`,
        },
        managementUrls,
        baseUrl: base.replace(/\/$/, ""),
        // The extension's binding carries its links' query (taskHub,
        // connection, code) here; the entity calls need it non-empty.
        requiredQueryStringParameters: query.replace(/^\?/, ""),
    });
    return { client, probeID: id, taskHubName };
}

// ---- the scenario --------------------------------------------------------

async function scenario(mode, client) {
    currentMode = mode;
    record(client);
    const P = `js-${mode}-`;
    const t0 = new Date();
    const echoInput = { n: 1, s: "grüße & <tags>", list: [1, 2, null], nested: { ok: true } };
    let echoID;

    await step("startNew generated id", async () => {
        echoID = await client.startNew("Echo", { input: echoInput });
        assert.match(String(echoID), /^[0-9a-f]{32}$/, "generated instance ID");
        return echoID;
    });

    await step("getStatus completed Echo", async () => {
        const st = await waitFor(client, echoID, "Completed");
        checkStatusShape(st);
        assert.equal(st.name, "Echo");
        assert.equal(st.instanceId, echoID);
        assert.deepEqual(st.input, echoInput);
        assert.deepEqual(st.output, echoInput);
        assert.equal(st.customStatus, null);
        assert.ok(st.createdTime.getTime() >= Math.floor(t0.getTime() / 1000) * 1000, `createdTime ${st.createdTime.toISOString()} before the start ${t0.toISOString()}`);
        return `${st.runtimeStatus}, output ${JSON.stringify(st.output)}`;
    });

    const waiter = P + "waiter";
    await step("startNew explicit id", async () => {
        const id = await client.startNew("Waiter", { instanceId: waiter, input: "hello" });
        assert.equal(id, waiter);
        return id;
    });

    await step("getStatus running Waiter", async () => {
        const st = await waitFor(client, waiter, "Running");
        checkStatusShape(st);
        assert.equal(st.name, "Waiter");
        assert.equal(st.input, "hello");
        assert.equal(st.output, null);
        return st.runtimeStatus;
    });

    await step("getStatus options", async () => {
        const st = await client.getStatus(waiter, { showHistory: true, showHistoryOutput: true, showInput: false });
        checkStatusShape(st);
        if (mode === "templates") {
            // Legacy mode forwards showInput=false.
            assert.equal(st.input, null, "showInput=false still returned the input");
        } else {
            // rpc mode only forwards truthy flags, so showInput=false is lost.
            assert.equal(st.input, "hello");
        }
        return `input ${JSON.stringify(st.input)}`;
    });

    await step("startNew running id rejected", async () => {
        return rejects(client.startNew("Waiter", { instanceId: waiter }), /status code: 409/, "duplicate start");
    });

    await step("startNew unknown orchestrator rejected", async () =>
        rejects(client.startNew("NoSuchOrchestrator"), /status code: 404/, "unknown orchestrator"));

    await step("getStatus unknown instance rejected", async () => {
        await rejects(client.getStatus(P + "missing"), /HTTP 404/, "unknown instance");
        return "404";
    });

    await step("raiseEvent", async () => {
        await client.raiseEvent(waiter, "Go", { ok: true, n: 2 });
        const st = await waitFor(client, waiter, "Completed");
        assert.deepEqual(st.output, { ok: true, n: 2 });
        return `output ${JSON.stringify(st.output)}`;
    });

    await step("raiseEvent finished instance", async () => {
        await client.raiseEvent(waiter, "Go", "late"); // 410 is success for the client
        const last = exchanges[exchanges.length - 1];
        assert.match(last, / -> 410 /, "raising an event on a finished instance");
        return "410 accepted";
    });

    await step("raiseEvent unknown instance rejected", async () =>
        rejects(client.raiseEvent(P + "missing", "Go", 1), /No instance with ID/, "unknown instance"));

    const term = P + "term";
    await step("terminate", async () => {
        await client.startNew("Waiter", { instanceId: term });
        await waitFor(client, term, "Running");
        await client.terminate(term, "stopped by js");
        const st = await waitFor(client, term, "Terminated");
        assert.equal(st.output, "stopped by js");
        return `output ${JSON.stringify(st.output)}`;
    });

    await step("terminate finished instance", async () => {
        await client.terminate(term, "again");
        assert.match(exchanges[exchanges.length - 1], / -> 410 /);
        return "410 accepted";
    });

    await step("getStatusAll", async () => {
        const mark = exchanges.length;
        const all = await client.getStatusAll();
        const ids = checkListShape(all, "getStatusAll");
        for (const id of [echoID, waiter, term]) {
            assert.ok(ids.includes(id), `getStatusAll lacks ${id}: ${ids}`);
        }
        const pages = requestsSince(mark).length;
        if (mode === "templates") {
            const want = Math.ceil(all.length / 2);
            assert.equal(pages, want, `getStatusAll of ${all.length} instances with top=2 made ${pages} requests`);
        }
        return `${all.length} instances in ${pages} page(s)`;
    });

    await step("getStatusBy createdTimeFrom and runtimeStatus", async () => {
        const mark = exchanges.length;
        const list = await client.getStatusBy({ createdTimeFrom: t0, runtimeStatus: ["Completed", "Terminated"] });
        const ids = checkListShape(list, "getStatusBy");
        assert.deepEqual([...ids].sort(), [echoID, waiter, term].sort(), "getStatusBy selection");
        for (const st of list) {
            assert.ok(st.runtimeStatus === "Completed" || st.runtimeStatus === "Terminated", `status ${st.runtimeStatus}`);
        }
        const pages = requestsSince(mark).length;
        if (mode === "templates") {
            assert.equal(pages, 2, `3 instances with top=2 took ${pages} requests`);
        }
        return `${ids.length} instances in ${pages} page(s)`;
    });

    await step("getStatusBy empty results", async () => {
        const running = await client.getStatusBy({ createdTimeFrom: t0, runtimeStatus: ["Running", "Pending", "Suspended"] });
        assert.deepEqual(checkListShape(running, "getStatusBy running"), []);
        const future = await client.getStatusBy({ createdTimeFrom: new Date(Date.now() + 3600e3) });
        assert.deepEqual(checkListShape(future, "getStatusBy future"), []);
        return "[] and []";
    });

    await step("purgeInstanceHistory", async () => {
        const res = await client.purgeInstanceHistory(echoID);
        assert.equal(res.instancesDeleted, 1);
        await rejects(client.getStatus(echoID), /HTTP 404/, "status after purge");
        const again = await client.purgeInstanceHistory(echoID); // 404 means 0 deleted
        assert.equal(again.instancesDeleted, 0);
        return "1 then 0";
    });

    await step("purgeInstanceHistoryBy", async () => {
        const res = await client.purgeInstanceHistoryBy({ createdTimeFrom: t0, runtimeStatus: ["Completed"] });
        assert.equal(res.instancesDeleted, 1, `purged ${JSON.stringify(res)}; only ${waiter} should match`);
        await rejects(client.getStatus(waiter), /HTTP 404/, "status after purge");
        const kept = await client.getStatus(term);
        assert.equal(kept.runtimeStatus, "Terminated");
        const again = await client.purgeInstanceHistoryBy({ createdTimeFrom: t0, runtimeStatus: ["Completed"] });
        assert.equal(again.instancesDeleted, 0);
        return "1 then 0";
    });

    const susp = P + "susp";
    await step("suspend", async () => {
        await client.startNew("Waiter", { instanceId: susp, input: { by: "js" } });
        await waitFor(client, susp, "Running");
        await client.suspend(susp, "paused by js");
        const st = await waitFor(client, susp, "Suspended");
        return st.runtimeStatus;
    });

    await step("rewind unfailed instance rejected", async () =>
        // 412 from our API. The client uses the response body itself as the
        // error message: the extension sends a JSON string there, our API its
        // {"error":{...}} object, which makes the message "[object Object]".
        rejects(client.rewind(susp, "not failed"), /./, "rewind of a suspended instance"));

    await step("raiseEvent while suspended", async () => {
        await client.raiseEvent(susp, "Go", "after resume");
        await sleep(500); // a suspended instance must not act on the event
        const st = await client.getStatus(susp);
        assert.equal(st.runtimeStatus, "Suspended", "the instance ran while suspended");
        return st.runtimeStatus;
    });

    await step("resume", async () => {
        await client.resume(susp, "resumed by js");
        const st = await waitFor(client, susp, "Completed");
        assert.equal(st.output, "after resume");
        return `output ${JSON.stringify(st.output)}`;
    });

    await step("suspend and resume finished instance", async () => {
        await client.suspend(susp, "late");
        assert.match(exchanges[exchanges.length - 1], / -> 410 /);
        await client.resume(susp, "late");
        assert.match(exchanges[exchanges.length - 1], / -> 410 /);
        return "410 accepted";
    });

    await step("suspend unknown instance rejected", async () =>
        rejects(client.suspend(P + "missing", "x"), /No instance with ID/, "unknown instance"));

    const flaky = P + "flaky";
    const healDir = process.env.CRASHTEST_DIR;
    if (!healDir) {
        console.log(`skip ${mode} rewind: CRASHTEST_DIR is not set`);
        return;
    }
    const heal = path.join(healDir, "heal");
    await step("rewind", async () => {
        fs.rmSync(heal, { force: true });
        await client.startNew("Flaky", { instanceId: flaky });
        const failed = await waitFor(client, flaky, "Failed");
        assert.match(JSON.stringify(failed.output), /not healed yet/, "failure message");
        fs.writeFileSync(heal, "");
        try {
            await client.rewind(flaky, "healed by js");
            const st = await waitFor(client, flaky, "Completed");
            assert.equal(st.output, "done before, healed");
            return `Failed then ${st.runtimeStatus}, output ${JSON.stringify(st.output)}`;
        } finally {
            fs.rmSync(heal, { force: true });
        }
    });

    await step("rewind completed instance rejected", async () =>
        rejects(client.rewind(flaky, "again"), /status code: 410/, "rewind of a completed instance"));

    await step("rewind unknown instance rejected", async () =>
        // 404 from our API; the same message caveat as for 412 above.
        rejects(client.rewind(P + "missing", "x"), /./, "rewind of an unknown instance"));

    // startNew({version}) sends ?version= (the Go test checks the stored
    // version: the status payload has none).
    await step("startNew with version", async () => {
        const id = await client.startNew("Echo", { instanceId: P + "ver", input: "versioned", version: "3.1" });
        assert.equal(id, P + "ver");
        assert.ok(exchanges.some((x) => x.includes("version=3.1")), "the start request carried no version");
        const st = await waitFor(client, id, "Completed");
        assert.equal(st.output, "versioned");
        return st.runtimeStatus;
    });

    // Entities: the test app's Counter (add, reset, get).
    const counter = new EntityId("Counter", P + "c1");
    await step("readEntityState before any signal", async () => {
        const r = await client.readEntityState(counter);
        assert.equal(r.entityExists, false, `entity exists: ${JSON.stringify(r)}`);
        assert.match(exchanges[exchanges.length - 1], / -> 404 /);
        return "entityExists false";
    });

    await step("signalEntity add", async () => {
        await client.signalEntity(counter, "add", 5);
        assert.match(exchanges[exchanges.length - 1], /^POST .*entities\/Counter\/js-\w+-c1\?op=add.* -> 202 /);
        await client.signalEntity(counter, "add", 37);
        const r = await waitForEntity(client, counter, 42);
        return `entityState ${JSON.stringify(r.entityState)}`;
    });

    await step("signalEntity without input", async () => {
        await client.signalEntity(counter, "reset");
        const r = await waitForEntity(client, counter, 0);
        return `entityState ${JSON.stringify(r.entityState)}`;
    });

    await step("signalEntity unknown entity rejected", async () =>
        rejects(client.signalEntity(new EntityId("Nope", "k"), "add", 1), /status code: 404/, "unknown entity"));
}

async function main() {
    currentStep = "load";
    ok(`${DF_PACKAGE}@${dfVersion}, base ${base}`);
    await scenario("rpc", rpcClient());
    currentMode = "templates";
    currentStep = "binding from check-status response";
    const { client, probeID, taskHubName } = await templatesClient();
    ok(`taskHub ${taskHubName}, probe instance ${probeID}`);
    await scenario("templates", client);
    currentMode = "all";
    console.log("PASS");
}

main().catch(fail);
