package peers;

import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.Future;

import software.amazon.awssdk.auth.credentials.AwsBasicCredentials;
import software.amazon.awssdk.auth.credentials.StaticCredentialsProvider;
import software.amazon.kinesis.producer.Attempt;
import software.amazon.kinesis.producer.KinesisProducer;
import software.amazon.kinesis.producer.KinesisProducerConfiguration;
import software.amazon.kinesis.producer.UserRecordFailedException;
import software.amazon.kinesis.producer.UserRecordResult;

/**
 * The real KPL as a peer in the side-by-side benchmark (benches/peers/run.py): puts N records
 * of SIZE bytes with random partition keys into STREAM through the KPL's defaults (aggregation,
 * collection, 150% rate limit, 30 s TTL), keeping at most MAX_OUTSTANDING records in the KPL
 * as its documentation advises, waits for every future and prints one JSON line. Every
 * endpoint it could call (Kinesis, CloudWatch, STS) is the emulator's on loopback.
 *
 * <p>Usage: KplProducer HOST TLS_PORT STREAM N SIZE [MAX_OUTSTANDING]
 *
 * <p>CPU and peak memory are read from /proc for the JVM and for the KPL's native daemon (a
 * child process, read before it is stopped): /usr/bin/time counts the daemon's CPU only once
 * it is reaped, and reports the larger of the two peaks, not their sum.
 */
public final class KplProducer {
    private KplProducer() {}

    static byte[] payload(int n, int size) {
        byte[] head = String.format("rec-%09d-", n).getBytes(StandardCharsets.US_ASCII);
        byte[] data = new byte[Math.max(size, head.length)];
        java.util.Arrays.fill(data, (byte) 'x');
        System.arraycopy(head, 0, data, 0, head.length);
        return data;
    }

    /** utime + stime of a process in seconds, from /proc/PID/stat (USER_HZ = 100). */
    static double cpuSeconds(long pid) {
        try {
            String stat = Files.readString(Path.of("/proc/" + pid + "/stat"));
            String[] fields = stat.substring(stat.lastIndexOf(')') + 2).split(" ");
            return (Long.parseLong(fields[11]) + Long.parseLong(fields[12])) / 100.0;
        } catch (Exception e) {
            return 0;
        }
    }

    /** Peak resident set (VmHWM) of a process in MiB. */
    static double peakRssMib(long pid) {
        try {
            for (String line : Files.readAllLines(Path.of("/proc/" + pid + "/status"))) {
                if (line.startsWith("VmHWM:")) {
                    return Long.parseLong(line.replaceAll("[^0-9]", "")) / 1024.0;
                }
            }
        } catch (Exception e) {
            // The process is gone: nothing to add.
        }
        return 0;
    }

    public static void main(String[] args) throws Exception {
        String host = args[0];
        long port = Long.parseLong(args[1]);
        String stream = args[2];
        int n = Integer.parseInt(args[3]);
        int size = Integer.parseInt(args[4]);
        int maxOutstanding = args.length > 5 ? Integer.parseInt(args[5]) : 100_000;

        KinesisProducerConfiguration config = new KinesisProducerConfiguration()
                .setRegion("us-east-1")
                .setCredentialsProvider(
                        StaticCredentialsProvider.create(AwsBasicCredentials.create("local", "local")))
                .setKinesisEndpoint(host)
                .setKinesisPort(port)
                .setCloudwatchEndpoint(host)
                .setCloudwatchPort(port)
                .setStsEndpoint(host)
                .setStsPort(port)
                .setVerifyCertificate(false)
                .setMetricsLevel("none")
                .setLogLevel("warning");
        KinesisProducer producer = new KinesisProducer(config);
        Random random = new Random();
        List<Future<UserRecordResult>> futures = new ArrayList<>(n);
        long start = System.nanoTime();
        for (int i = 0; i < n; i++) {
            while (producer.getOutstandingRecordsCount() > maxOutstanding) {
                Thread.sleep(1);
            }
            String key = String.format("%016x", random.nextLong());
            futures.add(producer.addUserRecord(stream, key, ByteBuffer.wrap(payload(i, size))));
        }
        producer.flush();
        long acked = 0, failed = 0, throttled = 0;
        String lastError = "";
        for (Future<UserRecordResult> future : futures) {
            UserRecordResult result;
            try {
                result = future.get();
            } catch (ExecutionException e) {
                if (!(e.getCause() instanceof UserRecordFailedException)) {
                    throw e;
                }
                result = ((UserRecordFailedException) e.getCause()).getResult();
            }
            if (result.isSuccessful()) {
                acked++;
            } else {
                failed++;
            }
            for (Attempt attempt : result.getAttempts()) {
                if (!attempt.isSuccessful()) {
                    String code = attempt.getErrorCode() == null ? "" : attempt.getErrorCode();
                    if (code.contains("ProvisionedThroughputExceeded")) {
                        throttled++;
                    } else {
                        lastError = code + ": " + attempt.getErrorMessage();
                    }
                }
            }
        }
        double seconds = (System.nanoTime() - start) / 1e9;

        long self = ProcessHandle.current().pid();
        double daemonCpu = 0, daemonRss = 0;
        List<ProcessHandle> daemons = ProcessHandle.current().children().toList();
        for (ProcessHandle child : daemons) {
            daemonCpu += cpuSeconds(child.pid());
            daemonRss += peakRssMib(child.pid());
        }
        producer.destroy();
        // Reaped, the daemon's CPU counts in what /usr/bin/time reports for this process.
        for (ProcessHandle child : daemons) {
            try {
                child.onExit().get(10, java.util.concurrent.TimeUnit.SECONDS);
            } catch (Exception e) {
                // Still running after 10 s: /usr/bin/time misses its CPU; the JSON has it.
            }
        }
        double jvmCpu = cpuSeconds(self), jvmRss = peakRssMib(self);
        System.out.printf(
                "{\"acknowledged\": %d, \"failed\": %d, \"throttled_entries\": %d, \"seconds\": %.3f, "
                        + "\"jvm_cpu_s\": %.2f, \"daemon_cpu_s\": %.2f, \"jvm_peak_rss_mib\": %.1f, "
                        + "\"daemon_peak_rss_mib\": %.1f, \"last_error\": \"%s\"}%n",
                acked, failed, throttled, seconds, jvmCpu, daemonCpu, jvmRss, daemonRss,
                lastError.replace("\\", "\\\\").replace("\"", "'"));
        System.exit(0);
    }
}
