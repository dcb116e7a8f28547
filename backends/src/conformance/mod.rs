//! The behaviour every backend must show, written once.
//!
//! Each rule is a `pub async fn` taking the backend under test and the
//! [`MockClock`](crate::MockClock) it was built on, in the file of its
//! subject; helpers the rules share live in [`fixture`].
//! [`conformance_tests!`](crate::conformance_tests) expands to one
//! `#[tokio::test]` per rule for a backend factory, so a backend's test
//! file is one line:
//!
//! ```text
//! backends::conformance_tests!(|clock| async move { MemoryBackend::with_seed(Arc::new(clock), 1) });
//! ```
//!
//! The factory gets a fresh [`MockClock`](crate::MockClock) and must return
//! a fresh, empty backend on that clock. Rules move the clock by hand; none
//! sleeps.
//!
//! The macro holds the one list of rules; [`RULES`] is made from the same
//! list, and a unit test compares it with the `pub async fn`s of the
//! subject files, so a rule that is written but not listed (and so would
//! never run) fails the build's tests instead of passing unnoticed.

pub mod archive;
pub mod attempts;
pub mod chaining;
pub mod continuous;
pub mod del_units;
pub mod delays;
pub mod fixture;
pub mod locks;
pub mod max_retries;
pub mod max_running;
pub mod priorities;
pub mod retry;
pub mod scheduler;
pub mod specs;
pub mod stats;
pub mod units;
pub mod workers;

pub use archive::*;
pub use attempts::*;
pub use chaining::*;
pub use continuous::*;
pub use del_units::*;
pub use delays::*;
pub use fixture::*;
pub use locks::*;
pub use max_retries::*;
pub use max_running::*;
pub use priorities::*;
pub use retry::*;
pub use scheduler::*;
pub use specs::*;
pub use stats::*;
pub use units::*;
pub use workers::*;

crate::conformance_tests!(@with @names);

/// Expands to one `#[tokio::test]` per conformance rule for a backend
/// factory: an expression callable as `factory(clock: MockClock)` that
/// returns a future of a fresh backend.
#[macro_export]
macro_rules! conformance_tests {
    // The one list of rules, handed to the arm named by the caller. A rule
    // missing here never runs; `guard.rs` fails the unit tests if one is.
    (@with $($then:tt)*) => {
        $crate::conformance_tests!($($then)*;
            spec_round_trip_and_listing,
            spec_listing_start_is_inclusive,
            spec_reset_replaces_data_and_metadata,
            spec_delete_removes_spec_and_units,
            spec_clear_returns_the_count,
            spec_without_valid_name_is_refused,
            spec_with_mistyped_special_keys_is_refused,
            spec_weight_derivation,
            spec_meta_reports_the_derived_metadata,
            spec_meta_counts_available_and_pending,
            control_pause_and_resume,
            control_continuous_needs_declaration,
            control_changes_show_in_meta,
            units_round_trip_sorted_by_key,
            add_units_later_duplicates_win,
            readding_replaces_data_and_resets_priority,
            readding_done_units_makes_them_available,
            readding_pending_unit_keeps_its_attempt,
            unit_query_start_is_exclusive_and_limit_caps,
            unit_query_filters_by_state,
            unit_query_by_keys,
            unit_query_by_prefix,
            unit_status_counts_attempts_and_shows_priority,
            retry_named_failed_units,
            retry_all_failed_units,
            list_workers_shows_live_workers_and_their_units,
            effective_data_follows_the_active_attempt,
            binary_keys_sort_bytewise,
            keys_keep_their_string_type,
            readding_a_key_as_the_other_type_switches_its_answer,
            spec_values_keep_their_string_type,
            unit_status_is_none_for_unknown_keys,
            units_by_priority_then_key,
            fractional_and_negative_priorities,
            prioritize_set_and_adjust,
            prioritize_applies_to_pending_units,
            delayed_unit_waits_for_its_delay,
            delayed_unit_lets_others_go_first,
            counts_are_exact_and_omit_zeros,
            get_work_creates_a_leased_attempt,
            now_follows_the_clock,
            expired_lease_frees_the_unit,
            expired_lease_is_seen_by_get_work,
            renew_extends_the_lease_from_now,
            non_positive_lease_releases_the_unit,
            finish_records_the_final_data,
            fail_records_the_traceback,
            retry_restores_the_original_data,
            finished_then_failed_is_a_noop,
            failed_then_finished_wins,
            pending_to_available_expires_the_attempt,
            update_of_missing_unit_or_spec_fails,
            finishing_an_available_unit_forces_an_attempt,
            updating_an_available_unit_replaces_its_data,
            pending_on_an_available_unit_starts_an_attempt,
            done_units_cannot_become_pending,
            max_running_caps_pending_units,
            max_getwork_caps_one_call,
            max_jobs_units_come_from_one_spec,
            max_retries_fails_the_third_attempt,
            max_retries_moves_on_to_the_next_unit,
            scheduler_skips_paused_specs,
            scheduler_matches_runtimes,
            scheduler_skips_specs_at_max_running,
            scheduler_skips_specs_without_weight,
            scheduler_honours_work_spec_names,
            scheduler_priority_beats_weight,
            scheduler_pending_counts_follow_weights,
            continuous_spec_yields_a_synthetic_unit,
            continuous_waits_for_pending_and_available_units,
            continuous_interval_gates_synthetic_units,
            continuous_needs_a_running_continuous_spec,
            chain_map_output,
            chain_list_of_keys,
            chain_list_of_pairs,
            chain_items_with_meta,
            chain_items_with_priority,
            chain_map_with_a_bad_value_creates_nothing,
            chain_to_a_missing_spec_is_ignored,
            chain_only_on_finish,
            chain_uses_the_final_data,
            chain_upserts_into_the_target,
            del_all_units,
            del_units_by_key_and_state,
            del_units_by_state,
            deleted_pending_unit_cannot_be_updated,
            heartbeat_lists_the_worker,
            unregistered_worker_is_not_listed,
            long_gone_workers_are_forgotten,
            expired_worker_is_not_listed,
            child_work_units_are_listed_under_the_parent,
            child_work_units_drop_expired_leases,
            empty_parent_means_no_parent,
            archive_keeps_the_newest,
            archive_removes_old_units,
            spec_stats_match_counts,
            spec_stats_counters_count_each_event,
            locks_exclude_prefixes_and_extensions,
            lock_is_all_or_nothing_and_locksome_is_not,
            renew_and_unlock_need_the_owner,
            locks_expire_by_the_clock,
            labels_compare_exactly_and_namespaces_delete,
            lock_calls_over_a_limit_are_refused,
        );
    };
    (@names; $($rule:ident),* $(,)?) => {
        /// The name of every rule [`conformance_tests!`](crate::conformance_tests) runs.
        pub const RULES: &[&str] = &[$(stringify!($rule)),*];
    };
    (@tests $factory:expr; $($rule:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $rule() {
                let clock = $crate::clock::MockClock::new();
                let backend = ($factory)(clock.clone()).await;
                $crate::conformance::$rule(&backend, &clock).await;
            }
        )*
    };
    ($factory:expr) => {
        $crate::conformance_tests!(@with @tests $factory);
    };
}

#[cfg(test)]
mod guard;
