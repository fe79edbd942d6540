//! The tables a worker creates get the billing mode, point-in-time recovery, deletion
//! protection and tags it was given; tables that exist are used as they are.

use crate::support;

use std::time::Duration;

use aws_sdk_dynamodb::types::{BillingMode, PointInTimeRecoveryStatus};
use kinesis_consumer::{Billing, ConfigError, TableOptions, Worker};
use kinesis_testkit::{DynamoDbEmulator, LocalAws};
use support::{Log, builder, produce, spawn_worker};

/// What a table looks like to an operator: (billing mode, read units, write units,
/// deletion protection, point-in-time recovery on).
async fn settings(
    dynamodb: &aws_sdk_dynamodb::Client,
    table: &str,
) -> (BillingMode, i64, i64, bool, bool) {
    let described = dynamodb
        .describe_table()
        .table_name(table)
        .send()
        .await
        .unwrap();
    let t = described.table().unwrap();
    // A table created without a billing mode summary is provisioned (DynamoDB's default).
    let billing = t
        .billing_mode_summary()
        .and_then(|b| b.billing_mode().cloned())
        .unwrap_or(BillingMode::Provisioned);
    let throughput = t.provisioned_throughput();
    let units =
        |f: fn(&aws_sdk_dynamodb::types::ProvisionedThroughputDescription) -> Option<i64>| {
            throughput.and_then(f).unwrap_or(0)
        };
    let recovery = dynamodb
        .describe_continuous_backups()
        .table_name(table)
        .send()
        .await
        .unwrap();
    let pitr = recovery
        .continuous_backups_description()
        .and_then(|d| d.point_in_time_recovery_description())
        .and_then(|p| p.point_in_time_recovery_status())
        == Some(&PointInTimeRecoveryStatus::Enabled);
    (
        billing,
        units(|t| t.read_capacity_units()),
        units(|t| t.write_capacity_units()),
        t.deletion_protection_enabled().unwrap_or(false),
        pitr,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_tables_get_the_billing_recovery_protection_and_tags_asked_for() {
    let aws = LocalAws::start().await.unwrap();
    aws.create_stream("opts", 1).await.unwrap();
    let options = TableOptions::default()
        .billing(Billing::Provisioned {
            read_units: 5,
            write_units: 7,
        })
        .point_in_time_recovery(true)
        .deletion_protection(true)
        .tag("team", "payments")
        .tag("cost-centre", "42");
    let log = Log::default();
    let (handle, task) = spawn_worker(
        builder(&aws, "opts-app", "opts", "w1")
            .await
            .lease_table_options(options),
        "w1",
        &log,
    )
    .await;
    // The worker works on the tables it made.
    produce(&aws, "opts", 50, "a").await;
    log.wait_for(50, Duration::from_secs(30)).await;
    handle.request_shutdown();
    task.await.unwrap().unwrap();

    let dynamodb = aws.dynamodb_client().await;
    for table in ["opts-app", "opts-app-Coordinator"] {
        assert_eq!(
            settings(&dynamodb, table).await,
            (BillingMode::Provisioned, 5, 7, true, true),
            "{table}"
        );
        let refused = dynamodb.delete_table().table_name(table).send().await;
        assert!(
            refused.is_err(),
            "{table}: deletion protection refuses DeleteTable"
        );
        let arn = dynamodb
            .describe_table()
            .table_name(table)
            .send()
            .await
            .unwrap()
            .table()
            .and_then(|t| t.table_arn().map(str::to_owned))
            .unwrap();
        match dynamodb
            .list_tags_of_resource()
            .resource_arn(arn)
            .send()
            .await
        {
            Ok(listed) => {
                let mut tags: Vec<_> = listed
                    .tags()
                    .iter()
                    .map(|t| (t.key().to_owned(), t.value().to_owned()))
                    .collect();
                tags.sort();
                assert_eq!(
                    tags,
                    [
                        ("cost-centre".to_owned(), "42".to_owned()),
                        ("team".to_owned(), "payments".to_owned())
                    ],
                    "{table}"
                );
            }
            // DynamoDB Local takes tags in CreateTable but cannot list them ("Tagging is not
            // currently supported in DynamoDB Local"); dynoxide lists them.
            Err(e) => assert_eq!(
                aws.dynamodb_emulator(),
                DynamoDbEmulator::External,
                "{table}: {e:?}"
            ),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn existing_tables_are_used_as_they_are() {
    let aws = LocalAws::start().await.unwrap();
    aws.create_stream("as-is", 1).await.unwrap();
    let dynamodb = aws.dynamodb_client().await;
    kinesis_testkit::tables::create_lease_table(&dynamodb, "as-is-app")
        .await
        .unwrap();
    let before = settings(&dynamodb, "as-is-app").await;
    assert_eq!(before, (BillingMode::PayPerRequest, 0, 0, false, false));
    let log = Log::default();
    let (handle, task) = spawn_worker(
        builder(&aws, "as-is-app", "as-is", "w1")
            .await
            .lease_table_options(
                TableOptions::default()
                    .billing(Billing::Provisioned {
                        read_units: 3,
                        write_units: 3,
                    })
                    .point_in_time_recovery(true)
                    .deletion_protection(true),
            ),
        "w1",
        &log,
    )
    .await;
    produce(&aws, "as-is", 20, "a").await;
    log.wait_for(20, Duration::from_secs(30)).await;
    handle.request_shutdown();
    task.await.unwrap().unwrap();
    assert_eq!(settings(&dynamodb, "as-is-app").await, before);
    // The table the worker made itself got them.
    assert_eq!(
        settings(&dynamodb, "as-is-app-Coordinator").await,
        (BillingMode::Provisioned, 3, 3, true, true)
    );
}

#[tokio::test]
async fn options_dynamodb_would_refuse_fail_the_build() {
    let aws = LocalAws::start().await.unwrap();
    let zero = TableOptions::default().billing(Billing::Provisioned {
        read_units: 0,
        write_units: 1,
    });
    let built = Worker::builder("refused-app", "s")
        .kinesis_client(aws.kinesis_client().await)
        .dynamodb_client(aws.dynamodb_client().await)
        .lease_table_options(zero)
        .build(());
    assert!(matches!(
        built.err(),
        Some(ConfigError::Invalid {
            option: "lease_table_options",
            ..
        })
    ));
}
