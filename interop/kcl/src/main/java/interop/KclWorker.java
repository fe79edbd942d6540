package interop;

import java.io.FileOutputStream;
import java.io.PrintStream;
import java.net.URI;
import java.nio.charset.StandardCharsets;
import java.util.HashMap;
import java.util.Map;

import software.amazon.awssdk.auth.credentials.AwsBasicCredentials;
import software.amazon.awssdk.auth.credentials.StaticCredentialsProvider;
import software.amazon.awssdk.http.Protocol;
import software.amazon.awssdk.http.nio.netty.NettyNioAsyncHttpClient;
import software.amazon.awssdk.regions.Region;
import software.amazon.awssdk.services.cloudwatch.CloudWatchAsyncClient;
import software.amazon.awssdk.services.dynamodb.DynamoDbAsyncClient;
import software.amazon.awssdk.services.kinesis.KinesisAsyncClient;
import software.amazon.kinesis.common.ConfigsBuilder;
import software.amazon.kinesis.common.InitialPositionInStream;
import software.amazon.kinesis.common.InitialPositionInStreamExtended;
import software.amazon.kinesis.coordinator.Scheduler;
import software.amazon.kinesis.lifecycle.events.InitializationInput;
import software.amazon.kinesis.lifecycle.events.LeaseLostInput;
import software.amazon.kinesis.lifecycle.events.ProcessRecordsInput;
import software.amazon.kinesis.lifecycle.events.ShardEndedInput;
import software.amazon.kinesis.lifecycle.events.ShutdownRequestedInput;
import software.amazon.kinesis.metrics.NullMetricsFactory;
import software.amazon.kinesis.processor.ShardRecordProcessor;
import software.amazon.kinesis.processor.SingleStreamTracker;
import software.amazon.kinesis.retrieval.KinesisClientRecord;
import software.amazon.kinesis.retrieval.polling.PollingConfig;

/**
 * One worker of the real Kinesis Client Library (3.x) for the mixed-fleet interop check.
 *
 * <p>{@code java interop.KclWorker --stream S --app A --kinesis URL --dynamodb URL --worker-id ID
 * --out FILE}: consumes from the trim horizon with polling, writes every record it processes as
 * {@code shard TAB key TAB sequence TAB subsequence TAB data} to FILE (flushed before each
 * checkpoint, after a {@code #init TAB shard} line for each processor started), and
 * checkpoints after every batch. It runs until killed.
 */
public final class KclWorker {
    private KclWorker() {}

    public static void main(String[] argv) throws Exception {
        Map<String, String> args = new HashMap<>();
        for (int i = 0; i + 1 < argv.length; i += 2) {
            args.put(argv[i].replaceFirst("^--", ""), argv[i + 1]);
        }
        String stream = required(args, "stream");
        String app = required(args, "app");
        String workerId = required(args, "worker-id");
        PrintStream out = new PrintStream(new FileOutputStream(required(args, "out"), true), false,
                StandardCharsets.UTF_8);

        StaticCredentialsProvider credentials =
                StaticCredentialsProvider.create(AwsBasicCredentials.create("test", "test"));
        Region region = Region.US_EAST_1;
        KinesisAsyncClient kinesis = KinesisAsyncClient.builder()
                .endpointOverride(URI.create(required(args, "kinesis")))
                .region(region)
                .credentialsProvider(credentials)
                .httpClientBuilder(NettyNioAsyncHttpClient.builder().protocol(Protocol.HTTP1_1))
                .build();
        DynamoDbAsyncClient dynamodb = DynamoDbAsyncClient.builder()
                .endpointOverride(URI.create(required(args, "dynamodb")))
                .region(region)
                .credentialsProvider(credentials)
                .build();
        // Never called: metrics go to a NullMetricsFactory.
        CloudWatchAsyncClient cloudwatch = CloudWatchAsyncClient.builder()
                .endpointOverride(URI.create(required(args, "dynamodb")))
                .region(region)
                .credentialsProvider(credentials)
                .build();

        SingleStreamTracker tracker = new SingleStreamTracker(stream,
                InitialPositionInStreamExtended.newInitialPosition(InitialPositionInStream.TRIM_HORIZON));
        ConfigsBuilder configs = new ConfigsBuilder(tracker, app, kinesis, dynamodb, cloudwatch, workerId,
                () -> new Processor(out));
        Scheduler scheduler = new Scheduler(
                configs.checkpointConfig(),
                configs.coordinatorConfig(),
                configs.leaseManagementConfig(),
                configs.lifecycleConfig(),
                configs.metricsConfig().metricsFactory(new NullMetricsFactory()),
                configs.processorConfig(),
                configs.retrievalConfig().retrievalSpecificConfig(new PollingConfig(stream, kinesis)));
        Thread thread = new Thread(scheduler, "scheduler");
        thread.start();
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            try {
                scheduler.startGracefulShutdown().get();
            } catch (Exception e) {
                System.err.println("graceful shutdown failed: " + e);
            }
        }));
        thread.join();
    }

    private static String required(Map<String, String> args, String name) {
        String value = args.get(name);
        if (value == null) {
            throw new IllegalArgumentException("--" + name + " is required");
        }
        return value;
    }

    /** Writes each record, then checkpoints. */
    private static final class Processor implements ShardRecordProcessor {
        private final PrintStream out;
        private String shardId;

        Processor(PrintStream out) {
            this.out = out;
        }

        @Override
        public void initialize(InitializationInput input) {
            shardId = input.shardId();
            synchronized (out) {
                out.println("#init\t" + shardId);
                out.flush();
            }
            System.err.println("initialize " + shardId + " at " + input.extendedSequenceNumber());
        }

        @Override
        public void processRecords(ProcessRecordsInput input) {
            synchronized (out) {
                for (KinesisClientRecord r : input.records()) {
                    String data = StandardCharsets.UTF_8.decode(r.data()).toString();
                    out.println(shardId + "\t" + r.partitionKey() + "\t" + r.sequenceNumber() + "\t"
                            + r.subSequenceNumber() + "\t" + data);
                }
                out.flush();
            }
            try {
                input.checkpointer().checkpoint();
            } catch (Exception e) {
                System.err.println("checkpoint of " + shardId + " failed: " + e);
            }
        }

        @Override
        public void leaseLost(LeaseLostInput input) {
            System.err.println("lease lost " + shardId);
        }

        @Override
        public void shardEnded(ShardEndedInput input) {
            try {
                input.checkpointer().checkpoint();
            } catch (Exception e) {
                System.err.println("shard end checkpoint of " + shardId + " failed: " + e);
            }
        }

        @Override
        public void shutdownRequested(ShutdownRequestedInput input) {
            try {
                input.checkpointer().checkpoint();
            } catch (Exception e) {
                System.err.println("shutdown checkpoint of " + shardId + " failed: " + e);
            }
        }
    }
}
