//! The renewer on paused time, against a lease table of one kind of behaviour.

use std::sync::Mutex;

use super::*;

/// A lease table of one kind of behaviour, switchable during a test.
#[derive(Clone, Default)]
struct FakeTable {
    state: Arc<Mutex<FakeState>>,
}

#[derive(Default)]
struct FakeState {
    mode: Mode,
    calls: u64,
    in_flight: usize,
    most_in_flight: usize,
    throughputs: Vec<Option<f64>>,
}

#[derive(Default, Clone, Copy, PartialEq)]
enum Mode {
    #[default]
    Answer,
    Refuse,
    Throttle,
    Hang,
    /// Renewed, with a handoff to "next" begun.
    Handoff,
}

impl FakeTable {
    fn set(&self, mode: Mode) {
        self.state.lock().unwrap().mode = mode;
    }
    fn calls(&self) -> u64 {
        self.state.lock().unwrap().calls
    }
}

impl RenewCall for FakeTable {
    async fn renew(
        &self,
        _: &str,
        _: &str,
        counter: u64,
        kbps: Option<f64>,
    ) -> Result<Option<Renewed>, ServiceError> {
        let mode = {
            let mut s = self.state.lock().unwrap();
            s.calls += 1;
            s.throughputs.push(kbps);
            s.in_flight += 1;
            s.most_in_flight = s.most_in_flight.max(s.in_flight);
            s.mode
        };
        tokio::time::sleep(Duration::from_millis(5)).await;
        if mode == Mode::Hang {
            std::future::pending::<()>().await;
        }
        self.state.lock().unwrap().in_flight -= 1;
        match mode {
            Mode::Answer => Ok(Some(Renewed {
                counter: counter + 1,
                handoff_to: None,
            })),
            Mode::Handoff => Ok(Some(Renewed {
                counter: counter + 1,
                handoff_to: Some("next".into()),
            })),
            Mode::Refuse => Ok(None),
            _ => Err(ServiceError {
                operation: "UpdateItem",
                kind: kinesis_common::ErrorKind::Throttling,
                code: Some("ProvisionedThroughputExceededException".into()),
                http_status: Some(400),
                message: "throttled".into(),
                source: None,
            }),
        }
    }
}

const SETTINGS: RenewerSettings = RenewerSettings {
    interval: Duration::from_millis(3333),
    failover: Duration::from_secs(10),
    margin: Duration::from_secs(1),
    concurrency: 4,
    call_timeout: Duration::from_secs(2),
};

struct Running {
    table: FakeTable,
    commands: mpsc::UnboundedSender<Command>,
    lost: mpsc::UnboundedReceiver<Lost>,
    _task: tokio::task::JoinHandle<()>,
}

fn start() -> Running {
    start_with(SETTINGS)
}

fn start_with(settings: RenewerSettings) -> Running {
    let table = FakeTable::default();
    let (commands, commands_rx) = mpsc::unbounded_channel();
    let (lost_tx, lost) = mpsc::unbounded_channel();
    let renewer = Renewer {
        table: table.clone(),
        owner: "me".into(),
        settings,
        commands: commands_rx,
        lost: lost_tx,
        stats: Arc::default(),
        telemetry: Arc::new(crate::telemetry::Telemetry::new(
            "test",
            "s",
            crate::MetricsGranularity::default(),
        )),
    };
    Running {
        table,
        commands,
        lost,
        _task: tokio::spawn(renewer.run()),
    }
}

fn hold(running: &Running, shard: &str) -> Deadline {
    hold_metered(running, shard, Arc::default(), None)
}

fn hold_metered(
    running: &Running,
    shard: &str,
    meter: Arc<ThroughputMeter>,
    carried_kbps: Option<f64>,
) -> Deadline {
    let (tx, rx) = watch::channel(SETTINGS.deadline_after(Instant::now()));
    running
        .commands
        .send(Command::Hold {
            shard_id: shard.into(),
            generation: 1,
            counter: 1,
            taken_at: Instant::now(),
            deadline: tx,
            meter,
            carried_kbps,
        })
        .unwrap();
    Deadline::new(rx, None)
}

#[tokio::test(start_paused = true)]
async fn renewals_carry_the_measured_throughput() {
    let running = start();
    let meter = Arc::new(ThroughputMeter::default());
    let _deadline = hold_metered(&running, "s-1", meter.clone(), Some(3.0));
    // Not reading yet: the carried figure is written.
    tokio::time::sleep(Duration::from_millis(3400)).await;
    meter.start();
    let t0 = std::time::SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
    for second in 1..=20u64 {
        tokio::time::sleep(Duration::from_secs(1)).await;
        meter.record(
            20 * 1024,
            Some(t0 + Duration::from_secs(second - 1)),
            Some(t0 + Duration::from_secs(second)),
        );
    }
    let seen = running.table.state.lock().unwrap().throughputs.clone();
    assert_eq!(seen[0], Some(3.0), "{seen:?}");
    let last = seen.last().copied().flatten().unwrap();
    assert!((last - 20.0).abs() < 2.0, "{seen:?}");
}

#[tokio::test(start_paused = true)]
async fn renewals_run_at_a_fixed_rate_and_push_the_deadline_out() {
    let running = start();
    let deadline = hold(&running, "s1");
    tokio::time::sleep(Duration::from_secs(60)).await;
    // 60 s / 3.333 s = 18 renewals.
    assert!(
        (17..=19).contains(&running.table.calls()),
        "{}",
        running.table.calls()
    );
    assert!(!deadline.passed());
    assert!(*deadline.lease.borrow() > Instant::now() + Duration::from_secs(5));
}

#[tokio::test(start_paused = true)]
async fn a_black_holed_table_ends_the_lease_at_its_deadline_without_an_answer() {
    let mut running = start();
    running.table.set(Mode::Hang);
    let start = Instant::now();
    let mut deadline = hold(&running, "s1");
    deadline.expired().await;
    // Taken at `start`; no renewal ever answered: failover − margin later, not a moment more.
    assert_eq!(start.elapsed(), Duration::from_secs(9));
    let lost = running.lost.recv().await.unwrap();
    assert_eq!(
        (lost.shard_id.as_str(), lost.reason),
        ("s1", LossReason::Expired)
    );
    assert_eq!(start.elapsed(), Duration::from_secs(9));
}

#[tokio::test(start_paused = true)]
async fn a_refused_renewal_gives_the_lease_up_at_once() {
    let mut running = start();
    running.table.set(Mode::Refuse);
    let start = Instant::now();
    let _deadline = hold(&running, "s1");
    let lost = running.lost.recv().await.unwrap();
    assert_eq!(lost.reason, LossReason::Taken);
    assert!(start.elapsed() < Duration::from_secs(4));
}

#[tokio::test(start_paused = true)]
async fn a_handoff_begun_is_told_once_and_the_lease_kept_alive() {
    let mut running = start();
    running.table.set(Mode::Handoff);
    let deadline = hold(&running, "s1");
    let told = running.lost.recv().await.unwrap();
    assert_eq!(told.reason, LossReason::HandoffRequested);
    assert_eq!(told.to.as_deref(), Some("next"));
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert!(running.lost.try_recv().is_err(), "told once");
    assert!(!deadline.passed(), "still renewed until handed over");
}

#[tokio::test(start_paused = true)]
async fn throttling_for_half_the_failover_time_loses_nothing() {
    let mut running = start();
    let deadline = hold(&running, "s1");
    tokio::time::sleep(Duration::from_secs(3)).await;
    running.table.set(Mode::Throttle);
    tokio::time::sleep(Duration::from_secs(5)).await;
    running.table.set(Mode::Answer);
    tokio::time::sleep(Duration::from_secs(20)).await;
    assert!(running.lost.try_recv().is_err(), "no lease lost");
    assert!(!deadline.passed());
}

#[tokio::test(start_paused = true)]
async fn throttling_shorter_than_failover_less_margin_and_interval_loses_nothing_whenever_it_begins()
 {
    let tight = RenewerSettings {
        interval: Duration::from_millis(1200),
        failover: Duration::from_secs(4),
        margin: Duration::from_secs(1),
        concurrency: 4,
        call_timeout: Duration::from_secs(1),
    };
    for settings in [SETTINGS, tight] {
        // The worst moment to begin is just before a renewal is due: the last success is
        // then almost an interval old, and the throttling must end with time left to retry.
        let outage =
            settings.failover - settings.margin - settings.interval - Duration::from_millis(50);
        let step = Duration::from_millis(10);
        let mut offset = settings.interval * 2;
        while offset <= settings.interval * 3 + step {
            let mut running = start_with(settings);
            let deadline = hold(&running, "s1");
            tokio::time::sleep(offset).await;
            running.table.set(Mode::Throttle);
            tokio::time::sleep(outage).await;
            running.table.set(Mode::Answer);
            tokio::time::sleep(Duration::from_secs(20)).await;
            assert!(
                running.lost.try_recv().is_err(),
                "{settings:?}: lost when {outage:?} of throttling began {offset:?} after the take"
            );
            assert!(!deadline.passed());
            running._task.abort();
            offset += step;
        }
    }
    // With the defaults' proportions that is more than half the failover time.
    assert!(SETTINGS.failover - SETTINGS.margin - SETTINGS.interval > SETTINGS.failover / 2);
}

#[tokio::test(start_paused = true)]
async fn no_more_than_the_concurrency_is_in_flight() {
    let running = start();
    let deadlines: Vec<Deadline> = (0..50).map(|i| hold(&running, &format!("s{i}"))).collect();
    tokio::time::sleep(Duration::from_secs(30)).await;
    let most = running.table.state.lock().unwrap().most_in_flight;
    assert_eq!(most, SETTINGS.concurrency);
    assert!(deadlines.iter().all(|d| !d.passed()));
}

#[test]
fn capacity_grows_with_concurrency_and_shrinks_with_latency() {
    let stats = RenewerStats::default();
    // Untimed: 25 ms a call → 4 × 1.67 s / 25 ms = 266.
    assert_eq!(stats.capacity(&SETTINGS), 266);
    stats.observe(Duration::from_millis(5));
    assert_eq!(stats.capacity(&SETTINGS), 1333);
}
