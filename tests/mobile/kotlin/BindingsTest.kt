// The generated Kotlin bindings of notch-mobile on the JVM (JNA), against a
// real sandbox gateway on loopback. Run by `cargo xtask test` (step "mobile
// bindings: Kotlin"): compiled with kotlinc against the generated
// mobile-bindings/bindings/kotlin sources, JNA and kotlinx-coroutines, then
// run with -Djna.library.path pointing at the built libnotch_mobile.so.
//
// Arguments: the notch-gateway binary, a scratch directory.
//
// Covered: a wallet pair (faucet, sync, send, a Kotlin listener, a Kotlin
// secret store), a Kotlin HostLogger (its level, no secret in its lines),
// typed exceptions.

import java.io.File
import java.net.URI
import java.net.http.HttpClient
import java.net.http.HttpRequest
import java.net.http.HttpResponse
import java.util.concurrent.ConcurrentHashMap
import java.util.concurrent.CopyOnWriteArrayList
import kotlin.system.exitProcess
import kotlinx.coroutines.runBlocking
import org.notch.wallet.*

/** The host's secret store: a map (as an app would wrap the Android Keystore). */
class MapStore : HostSecretStore {
    val secrets = ConcurrentHashMap<String, ByteArray>()

    override fun get(name: String): ByteArray? = secrets[name]

    override fun set(name: String, secret: ByteArray) {
        secrets[name] = secret.copyOf()
    }

    override fun delete(name: String) {
        secrets.remove(name)
    }

    override fun description(): String = "test map"
}

class LockedStore : HostSecretStore {
    override fun get(name: String): ByteArray? = throw SecretStoreException.AccessDenied("the phone is locked")

    override fun set(name: String, secret: ByteArray) = throw SecretStoreException.AccessDenied("the phone is locked")

    override fun delete(name: String) = throw SecretStoreException.AccessDenied("the phone is locked")

    override fun description(): String = "locked keystore"
}

class Events : WalletListener {
    val seen = CopyOnWriteArrayList<WalletEvent>()

    override fun onEvent(event: WalletEvent) {
        seen.add(event)
    }

    fun waitFor(what: String, test: (WalletEvent) -> Boolean): WalletEvent {
        val deadline = System.nanoTime() + 20_000_000_000L
        while (System.nanoTime() < deadline) {
            seen.firstOrNull(test)?.let { return it }
            Thread.sleep(50)
        }
        throw AssertionError("no $what event in $seen")
    }
}

/** The host's log: every line the library sends (as an app would hand them to android.util.Log). */
class Lines : HostLogger {
    val seen = CopyOnWriteArrayList<Triple<LogLevel, String, String>>()

    override fun log(level: LogLevel, target: String, message: String) {
        seen.add(Triple(level, target, message))
    }

    fun waitFor(what: String, test: (Triple<LogLevel, String, String>) -> Boolean): Triple<LogLevel, String, String> {
        val deadline = System.nanoTime() + 20_000_000_000L
        while (System.nanoTime() < deadline) {
            seen.firstOrNull(test)?.let { return it }
            Thread.sleep(50)
        }
        throw AssertionError("no log line: $what (of ${seen.size}: ${seen.takeLast(5)})")
    }
}

class Gateway(binary: String, dir: File) {
    private val process: Process
    val url: String
    private val http = HttpClient.newHttpClient()

    init {
        dir.mkdirs()
        process = ProcessBuilder(
            binary, "--sandbox", "--block-interval", "0", "--listen", "127.0.0.1:0",
            "--data-dir", dir.path,
        ).redirectError(File(dir, "gateway.log")).start()
        val lines = process.inputStream.bufferedReader()
        var found: String? = null
        while (found == null) {
            val line = lines.readLine() ?: break
            if ("listening on " in line) found = line.substringAfter("listening on ").trim()
        }
        url = found ?: throw IllegalStateException("the gateway did not say where it listens")
    }

    fun post(path: String, json: String): String {
        val request = HttpRequest.newBuilder(URI.create(url + path))
            .header("content-type", "application/json")
            .POST(HttpRequest.BodyPublishers.ofString(json)).build()
        val answer = http.send(request, HttpResponse.BodyHandlers.ofString())
        check(answer.statusCode() in 200..299) { "$path: ${answer.statusCode()} ${answer.body()}" }
        return answer.body()
    }

    fun get(path: String): String =
        http.send(HttpRequest.newBuilder(URI.create(url + path)).build(), HttpResponse.BodyHandlers.ofString()).body()

    fun stop() {
        process.destroyForcibly().waitFor()
    }
}

var passed = 0
var failed = 0

fun test(name: String, body: () -> Unit) {
    try {
        body()
        passed++
        println("ok   $name")
    } catch (e: Throwable) {
        failed++
        println("FAIL $name: $e")
        e.printStackTrace()
    }
}

fun check(condition: Boolean, message: () -> String) {
    if (!condition) throw AssertionError(message())
}

inline fun <reified E : Throwable> expect(contains: String, body: () -> Unit): E {
    try {
        body()
    } catch (e: Throwable) {
        if (e is E) {
            check(e.message.orEmpty().contains(contains)) { "message of ${e::class.simpleName}: ${e.message}" }
            return e
        }
        throw AssertionError("expected ${E::class.simpleName}, got $e", e)
    }
    throw AssertionError("expected ${E::class.simpleName}, nothing was thrown")
}

fun main(args: Array<String>) {
    val gateway = Gateway(args[0], File(args[1], "gateway"))
    val work = File(args[1])
    fun config(name: String) = WalletConfig(
        dataDir = File(work, name).path,
        gatewayUrl = gateway.url,
        network = Network.SANDBOX,
    )
    // The native asset: its symbol and decimals from /v1/info.
    val info = gateway.get("/v1/info")
    val native = Regex("""\{[^{}]*"native"\s*:\s*true[^{}]*\}""").find(info)?.value ?: error("no native asset in $info")
    val symbol = Regex(""""symbol"\s*:\s*"([^"]+)"""").find(native)!!.groupValues[1]
    val decimals = Regex(""""decimals"\s*:\s*(\d+)""").find(native)!!.groupValues[1].toInt()
    val coin = "1" + "0".repeat(decimals)

    test("a wallet pair: faucet, sync, send, events through a Kotlin listener") {
        runBlocking {
            val storeA = MapStore()
            val created = createWallet(config("a"), storeA)
            val a = created.wallet
            check(created.recoveryPhrase.split(" ").size == 12) { "12 words" }
            check(storeA.secrets.keys == setOf(a.walletId())) { "the secret is in the host's store: ${storeA.secrets.keys}" }
            val b = createWallet(config("b"), MapStore()).wallet
            val events = Events()
            a.setListener(events)

            val address = a.receiveAddress()
            gateway.post("/v1/sandbox/faucet", """{"address":"$address","asset":"$symbol","amount":${coin}0}""")
            gateway.post("/v1/sandbox/mine", """{"blocks":1}""")
            a.sync()
            val balance = a.balances().first { it.symbol == symbol }
            check(balance.spendable == coin + "0") { "spendable: $balance" }
            events.waitFor("payment received") { it is WalletEvent.PaymentReceived }

            val prepared = a.prepareSend(listOf(Recipient(address = b.receiveAddress(), amount = "1")))
            val summary = prepared.summary()
            check(summary.fee > 0u) { "a fee: $summary" }
            val txid = a.confirmSend(prepared)
            check(txid == summary.txid) { "the txid of the review" }
            gateway.post("/v1/sandbox/mine", """{"blocks":1}""")
            a.sync()
            b.sync()
            check(a.txStatus(txid).state == TxState.CONFIRMED) { "confirmed" }
            events.waitFor("tx confirmed") {
                it is WalletEvent.TxStateChanged && it.txid == txid && it.to == TxState.CONFIRMED
            }
            check(b.balances().first { it.symbol == symbol }.confirmed == coin) { "B got one coin" }
            check(a.history(null).first().txid == txid) { "history" }
            a.setListener(null)
            a.close()
            b.close()
        }
    }

    test("a Kotlin logger gets the library's lines at its level, and no secret") {
        val lines = Lines()
        check(setLogger(lines, LogLevel.INFO)) { "the library's subscriber is the process's" }
        try {
            runBlocking {
                val store = MapStore()
                val created = createWallet(config("logged"), store)
                val w = created.wallet
                val listening = w.startAgent(AgentOptions(listen = "127.0.0.1:0"))
                val port = listening.substringAfterLast(':')
                val (level, target, _) = lines.waitFor("the agent listening on $port") { (_, _, m) ->
                    m.startsWith("tally agent listening") && "port=$port" in m
                }
                check(level == LogLevel.INFO && target.startsWith("notch_core::agent")) { "$level $target" }
                w.sync() // its wallet events are DEBUG lines: not for this logger
                w.stopAgent()
                Thread.sleep(500)
                val below = lines.seen.filter { it.first == LogLevel.DEBUG || it.first == LogLevel.TRACE }
                check(below.isEmpty()) { "lines below INFO: $below" }
                // No two words of the phrase in a row, no byte of the stored secret as hex.
                val words = created.recoveryPhrase.split(" ")
                val pairs = words.zipWithNext { a, b -> Regex("\\b$a\\W{1,4}$b\\b", RegexOption.IGNORE_CASE) }
                val secret = store.secrets.getValue(w.walletId()).joinToString("") { "%02x".format(it) }
                val leaked = lines.seen.filter { (_, _, m) -> pairs.any { it.containsMatchIn(m) } || secret in m.lowercase() }
                check(leaked.isEmpty()) { "a secret reached the log: $leaked" }
                w.close()
            }
        } finally {
            setLogger(null, LogLevel.WARN)
        }
    }

    test("bad input raises typed exceptions with readable messages") {
        runBlocking {
            val w = createWallet(config("bad"), MapStore()).wallet
            w.sync()
            expect<SendException.BadAddress>("is not a valid address") {
                runBlocking { w.prepareSend(listOf(Recipient(address = "nope", amount = "1"))) }
            }
            expect<WalletException.BadTxid>("is not a transaction id") { runBlocking { w.txStatus("zz") } }
            expect<OpenException.BadConfig>("12 or 24 words") {
                runBlocking { createWallet(config("words"), MapStore(), 13u) }
            }
            expect<OpenException.SecretStore>("the phone is locked") {
                runBlocking { createWallet(config("locked"), LockedStore()) }
            }
            expect<OpenException.SecretMissing>("restore the wallet") {
                runBlocking { openWallet(config("bad"), MapStore()) }
            }
            expect<ScanException.Picture>("camera frame") {
                runBlocking { w.scanTicketFrame(ByteArray(10), 4u, 4u) }
            }
            w.close()
        }
    }

    gateway.stop()
    println("$passed passed, $failed failed")
    exitProcess(if (failed == 0) 0 else 1)
}
