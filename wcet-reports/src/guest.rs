//! The in-guest test suite: which boots to make, what each must print.
//!
//! Each boot runs the test kernel with `test=NAME`. The guest prints one
//! line per test (`test X ... ok` / `test X ... FAILED: why`) and a
//! `N passed, N failed` line, and leaves through `isa-debug-exit`. The host
//! adds checks only it can make (the console text of the banner and fault
//! reports, timing) and counts everything into one closing line.

use crate::qemu::{Accel, Boot, Outcome, Qemu, EXIT_FAIL, EXIT_PASS};
use anyhow::Result;
use std::path::Path;
use std::time::Duration;

/// A host-side check of a boot's console output.
pub struct Expect {
    pub name: &'static str,
    /// Every needle must appear in the output.
    pub needles: &'static [&'static str],
}

pub struct GuestBoot {
    pub name: &'static str,
    /// Needles that must appear in the decoded defmt log (COM2).
    pub defmt: &'static [&'static str],
    pub test: &'static str,
    /// Root task arguments (`None`: root task without arguments).
    pub root_args: Option<&'static str>,
    pub expect: &'static [Expect],
}

pub const BOOTS: &[GuestBoot] = &[
    GuestBoot {
        name: "boot",
        test: "suite",
        defmt: &["info memory region 0x0..0x100000", "info kernel pool: "],
        root_args: None,
        expect: &[Expect {
            name: "banner_names_kernel_cpu_and_loader",
            needles: &["Prism microkernel v", "cpu: ", "boot: Multiboot v1 by \"qemu\"", "memory: "],
        }],
    },
    GuestBoot {
        name: "fault",
        test: "page_fault",
        defmt: &[],
        root_args: None,
        expect: &[Expect {
            name: "page_fault_report_text",
            needles: &[
                "exception #PF (page fault, vector 14) in kernel mode",
                "cr2 0xffffffff00000000",
                "write access, page not present",
            ],
        }],
    },
    GuestBoot {
        name: "fault",
        test: "general_protection",
        defmt: &[],
        root_args: None,
        expect: &[Expect {
            name: "general_protection_report_text",
            needles: &["exception #GP (general protection, vector 13) in kernel mode", "error code 0x0"],
        }],
    },
    GuestBoot {
        name: "nmi",
        test: "nmi",
        defmt: &[],
        root_args: None,
        expect: &[Expect {
            name: "boot_log_names_the_protections",
            needles: &["protection: SMEP on, SMAP on, IST stacks for NMI, #DF and #MC"],
        }],
    },
];

/// An in-guest test image: the production kernel, sigma0 and the root task,
/// booting a test description whose tasks print their own test lines.
pub struct GuestImage {
    pub name: &'static str,
    /// The compact description (a file called `system`), from the repository root.
    pub system: &'static str,
    /// Test lines that must appear, each with `... ok`.
    pub tests: &'static [&'static str],
    /// Console checks: every needle present.
    pub expect: &'static [Expect],
    /// Console checks: these needles in this order.
    pub order: &'static [&'static str],
    /// Needles of the decoded defmt log.
    pub defmt: &'static [&'static str],
    /// Boot the test kernel (`test=system`: its debug calls, e.g. the
    /// pagers' page-table walk) instead of the production kernel.
    pub test_kernel: bool,
    /// Under `-icount` (guest time counts guest instructions: deadlines are
    /// judged against the guest's own work, and the run is deterministic).
    pub icount: bool,
    /// The job records the run must dump: each RT task with its job count
    /// (checked with the harness's reader: checksums, no gap, ordered TSC,
    /// PMC fields "not available" under TCG).
    pub records: &'static [(&'static str, u32)],
    /// RT tasks whose job records must be there, that many each, and show
    /// no deadline miss (the other tasks of the run may lack theirs); the
    /// check prints each one's worst job and response time.
    pub deadlines: &'static [(&'static str, u32)],
    /// RT and test tasks the root task's verdict counts failed on purpose
    /// (0: the run must pass).
    pub failed: usize,
}

pub const IMAGES: &[GuestImage] = &[
    GuestImage {
        name: "image",
        system: "kernel/tests/images/image/system",
        tests: &[
            "self_check_self_one",
            "self_check_self_two",
            "self_check_self_three",
            "root_task_loads_tasks_into_their_own_spaces",
            "task_runs_on_while_others_crash",
            "unprivileged_control_calls_refused",
            "mcp_bounds_created_and_raised_threads",
            "sigma0_gives_a_frame",
            "refused_fault_leaves_owner_frame_intact",
            "sigma0_refuses_a_fault_on_another_clients_frame",
            "sigma0_refuses_a_fault_on_a_foreign_colour",
            "bound_pager_gets_only_its_colours_frames_a",
            "bound_pager_gets_only_its_colours_frames_b",
        ],
        expect: &[
            Expect {
                name: "boot_chain_on_the_console",
                needles: &[
                    "starting \"sigma0\"",
                    "starting \"roottask\"",
                    "roottask: system \"image-test\"",
                    "roottask: task survivor (test, prio 10,",
                    "roottask: run complete:",
                ],
            },
            Expect {
                name: "crash_of_ud2_reported_with_task_vector_and_ip",
                needles: &["roottask: task crash-ud2 crashed: thread 0x", "vector 6 (#UD invalid opcode), error 0x0"],
            },
            Expect {
                name: "crash_of_wild_write_reported_with_task_vector_address_and_ip",
                needles: &[
                    "roottask: task crash-wild crashed: thread 0x",
                    "vector 14 (#PF page fault), error 0x6, address 0xdeadb000, ip 0x",
                ],
            },
        ],
        order: &[
            "roottask: task crash-ud2 crashed",
            "roottask: task crash-wild crashed",
            "test task_runs_on_while_others_crash ... ok",
        ],
        defmt: &[],
        test_kernel: false,
        icount: false,
        records: &[],
        deadlines: &[],
        failed: 0,
    },
    GuestImage {
        name: "suite",
        system: "kernel/tests/images/suite/system",
        tests: &[
            "kip_magic_and_version",
            "kip_names_sigma0_and_root_task",
            "unknown_syscall_rejected",
            "kernel_pointer_rejected",
            "overlong_print_rejected",
            "ipc_call_register_message_across_spaces",
            "ipc_call_utcb_message_60_words",
            "ipc_string_item_copy",
            "ipc_string_item_copy_with_page_faults",
            "ipc_open_and_closed_receive",
            "ipc_timeouts_zero_relative_never",
            "stale_thread_id_rejected",
            "priority_preemption_on_ipc",
            "round_robin_within_a_priority",
            "budget_exhaustion_notifies_and_resumes",
            "irq_delivered_as_ipc_unmasked_on_reply",
            "exception_ipc_fixup_resumes_thread",
            "garbage_syscall_arguments_rejected",
            "random_syscalls_from_unprivileged_thread",
            "fpu_state_switched_lazily_per_thread",
            "fastpath_call_registers_same_as_general_path",
            "fastpath_call_utcb_words_same_as_general_path",
            "fastpath_not_taken_partner_not_waiting",
            "fastpath_not_taken_string_item",
            "fastpath_not_taken_receive_timeout",
            "fastpath_taken_lower_priority_partner_nothing_between",
            "fastpath_not_taken_ready_thread_above_partner",
            "fastpath_refuses_what_the_allow_list_refuses",
            "fastpath_budget_charged_and_exhausted_as_general_path",
            "map_grant_and_rights_restriction",
            "map_never_replaces_a_utcb_or_the_kip",
            "recursive_flush_sigma0_a_b_task",
            "rights_reduction_write_revoked",
            "fault_without_pager_to_exception_handler",
            "io_ports_as_flexpages",
            "kernel_pool_exhaustion_is_an_error",
            "regress_nt_flag_from_ring3",
            "regress_pager_dies_with_fault_queued",
            "regress_pager_dies_after_taking_fault",
            "regress_fpu_new_owner_gets_clean_state",
            "regress_io_fpage_overflow_rejected",
            "regress_budget_with_longest_period",
            "regress_huge_timeout_does_not_wrap",
            "regress_syscall_at_end_of_user_half",
            "control_refused_config_changes_nothing",
            "control_refused_irq_attach_keeps_the_line",
            "control_refused_create_leaks_nothing",
        ],
        expect: &[Expect {
            name: "user_level_serial_driver_output",
            needles: &["user-level serial driver: hello through I/O ports the root task granted"],
        }],
        order: &[],
        defmt: &["info modules started"],
        test_kernel: false,
        icount: false,
        records: &[],
        deadlines: &[],
        failed: 0,
    },
    GuestImage {
        name: "pagers",
        system: "pager-tests/images/pagers/system",
        tests: &[
            "rt_frames_have_rt_colours",
            "rt_pages_spread_over_all_rt_colours",
            "ts_heap_grows_and_shrinks",
            "ts_maps_and_unmaps",
            "ts_frames_have_ts_colours",
            "ts_child_frames_have_ts_colours",
            "ts_spawn_exit_wait",
            "ts_crashing_child_is_reported_to_its_parent",
            "ts_pipe_ends_eof_and_broken_pipe",
            "ts_pipe_producer_consumer",
            "ts_page_fault_storm",
            "ts_task_exhausting_its_partition_is_killed",
            "ts_runs_on_after_an_oom_kill",
            "ts_description_task_exhausting_its_partition_is_removed",
            "rt_jobs_take_no_page_fault",
            "rt_task_meets_its_deadlines",
            "both_pagers_serve_their_tasks_in_one_run",
            "rt_meets_deadlines_while_ts_exhausts_its_partition",
            "rt_side_untouched_by_ts_memory_exhaustion",
            "rt_fault_during_run_is_reported_and_refused",
        ],
        expect: &[
            Expect {
                name: "rt_fault_during_run_reported_by_the_rt_pager",
                needles: &[
                    "rt-pager: ERROR: RT task rt-fault faulted during its run",
                    "roottask: task rt-fault crashed",
                ],
            },
            Expect {
                name: "ts_out_of_memory_reported",
                needles: &["ts-pager: out of memory: task ts-hog", "roottask: task ts-hog crashed"],
            },
        ],
        order: &[],
        defmt: &[],
        test_kernel: true,
        icount: true,
        records: &[],
        deadlines: &[],
        failed: 0,
    },
    GuestImage {
        name: "workloads",
        system: "workloads/tests/images/workloads/system",
        tests: &[
            "matmul_result_matches_the_host_value",
            "matmul_jobs_repeat_their_result",
            "matmul_wrong_expected_value_is_caught",
            "matmul_measured_jobs_have_ordered_timestamps",
            "matmul_may_not_program_the_counters",
            "matmul_pmc_fields_match_the_live_counters",
            "chase_result_matches_the_host_value",
            "chase_jobs_repeat_their_result",
            "chase_wrong_expected_value_is_caught",
            "chase_measured_jobs_have_ordered_timestamps",
            "chase_may_not_program_the_counters",
            "chase_pmc_fields_match_the_live_counters",
            "sha256_result_matches_the_host_value",
            "sha256_jobs_repeat_their_result",
            "sha256_wrong_expected_value_is_caught",
            "sha256_measured_jobs_have_ordered_timestamps",
            "sha256_may_not_program_the_counters",
            "sha256_pmc_fields_match_the_live_counters",
            "aes_result_matches_the_host_value",
            "aes_jobs_repeat_their_result",
            "aes_wrong_expected_value_is_caught",
            "aes_measured_jobs_have_ordered_timestamps",
            "aes_may_not_program_the_counters",
            "aes_pmc_fields_match_the_live_counters",
            "fft_result_matches_the_host_value",
            "fft_jobs_repeat_their_result",
            "fft_wrong_expected_value_is_caught",
            "fft_measured_jobs_have_ordered_timestamps",
            "fft_may_not_program_the_counters",
            "fft_pmc_fields_match_the_live_counters",
            "sort_result_matches_the_host_value",
            "sort_jobs_repeat_their_result",
            "sort_wrong_expected_value_is_caught",
            "sort_measured_jobs_have_ordered_timestamps",
            "sort_may_not_program_the_counters",
            "sort_pmc_fields_match_the_live_counters",
            "fir_result_matches_the_host_value",
            "fir_jobs_repeat_their_result",
            "fir_wrong_expected_value_is_caught",
            "fir_measured_jobs_have_ordered_timestamps",
            "fir_may_not_program_the_counters",
            "fir_pmc_fields_match_the_live_counters",
            "crc32_result_matches_the_host_value",
            "crc32_jobs_repeat_their_result",
            "crc32_wrong_expected_value_is_caught",
            "crc32_measured_jobs_have_ordered_timestamps",
            "crc32_may_not_program_the_counters",
            "crc32_pmc_fields_match_the_live_counters",
        ],
        expect: &[],
        order: &[],
        defmt: &[],
        test_kernel: false,
        icount: false,
        records: &[("rt-crc32", 200), ("rt-chase", 100), ("rt-matmul", 20)],
        deadlines: &[],
        failed: 0,
    },
    GuestImage {
        name: "loads",
        system: "workloads/tests/images/loads/system",
        tests: &[],
        expect: &[Expect {
            name: "ts_loads_report_their_work",
            needles: &["bandwidth bw: 20 sweep(s)", "latency lat: 5 walk(s)", "pingpong ping: 2000 round trip(s)"],
        }],
        order: &[],
        defmt: &[],
        test_kernel: false,
        icount: false,
        records: &[],
        deadlines: &[],
        failed: 0,
    },
    // The isolation images (issue 23): the same RT side alone and beside a
    // misbehaving TS side, under TCG+icount (exact, repeatable figures);
    // every RT job meets its deadline in each.
    GuestImage {
        name: "isolation-alone",
        system: "isolation-tests/images/alone/system",
        tests: &[],
        expect: &[Expect {
            name: "no_refusals_without_a_ts_side",
            needles: &["roottask: access control: 0 send(s) and 0 control call(s) refused in all"],
        }],
        order: &[],
        defmt: &[],
        test_kernel: false,
        icount: true,
        records: &ISOLATION_RT,
        deadlines: &ISOLATION_RT,
        failed: 0,
    },
    GuestImage {
        name: "isolation-access",
        system: "isolation-tests/images/access/system",
        tests: &[
            "explicit_allow_list_replaces_the_default",
            "ts_task_starts_with_no_refusals",
            "ts_task_has_an_allow_list",
            "ts_task_may_not_send_to_the_root_task",
            "ts_task_may_not_call_the_root_task",
            "ts_task_may_not_send_to_sigma0",
            "ts_task_may_not_call_the_rt_pager",
            "ts_task_may_not_send_to_an_rt_task",
            "refusal_returns_at_once_even_with_a_timeout",
            "ts_task_control_calls_refused",
            "ts_task_may_call_its_pager",
            "ts_task_may_call_a_ts_peer",
            "reply_to_a_caller_needs_no_list_entry",
            "refusals_counted_exactly",
            "spawned_ts_child_is_held_to_its_pager",
            "every_ts_check_reported_in_time",
        ],
        expect: &[Expect {
            name: "refusals_counted_per_task_on_the_console",
            needles: &[
                "roottask: access control: task probe (ts): 6 send(s) refused, 8 control call(s) refused",
                "roottask: access control: task narrow (ts): 1 send(s) refused, 0 control call(s) refused",
                "roottask: access control: 7 send(s) and 8 control call(s) refused in all",
            ],
        }],
        order: &[],
        defmt: &[],
        test_kernel: false,
        icount: true,
        records: &ISOLATION_RT,
        deadlines: &ISOLATION_RT,
        failed: 0,
    },
    GuestImage {
        name: "isolation-ts-crash",
        system: "isolation-tests/images/ts-crash/system",
        tests: &[
            "crash_ud2_was_removed",
            "crash_wild_was_removed",
            "crash_div0_was_removed",
            "crash_gp_was_removed",
            "crash_int3_was_removed",
            "crashing_ts_children_are_reported_to_their_parent",
            "ts_side_makes_progress",
            "every_ts_check_reported_in_time",
        ],
        expect: &[Expect {
            name: "ts_crashes_reported_with_task_thread_vector_address_and_ip",
            needles: &[
                "roottask: task crash-ud2 crashed: thread 0x",
                "vector 6 (#UD invalid opcode), error 0x0, address 0x0, ip 0x",
                "roottask: task crash-wild crashed: thread 0x",
                "vector 14 (#PF page fault), error 0x6, address 0xdeadb000, ip 0x",
                "roottask: task crash-div0 crashed: thread 0x",
                "vector 0 (#DE divide error)",
                "roottask: task crash-gp crashed: thread 0x",
                "vector 13 (#GP general protection)",
                "roottask: task crash-int3 crashed: thread 0x",
                "vector 3 (#BP breakpoint)",
                "ts-pager: task crashloop/isolation-test (thread 0x",
            ],
        }],
        order: &["roottask: task crash-ud2 crashed", "roottask: task crashloop ended", "roottask: task rt-crc32 ended"],
        defmt: &[],
        test_kernel: false,
        icount: true,
        records: &ISOLATION_RT,
        deadlines: &ISOLATION_RT,
        failed: 0,
    },
    GuestImage {
        name: "isolation-pager-crash",
        system: "isolation-tests/images/pager-crash/system",
        tests: &[
            "tspager_was_removed",
            "toucher1_was_removed",
            "toucher2_was_removed",
            "collector_word_reached_the_ts_side",
            "ts_side_makes_progress",
            "every_ts_check_reported_in_time",
        ],
        expect: &[Expect {
            name: "pager_crash_and_its_clients_reported",
            needles: &[
                "isolation-test pager: crashing on purpose at fault 300",
                "roottask: task tspager crashed: thread 0x",
                "roottask: task toucher1 crashed: thread 0x",
                "roottask: task toucher2 crashed: thread 0x",
            ],
        }],
        order: &[
            "roottask: task tspager crashed",
            "test ts_side_makes_progress ... ok",
            "roottask: task rt-crc32 ended",
        ],
        defmt: &[],
        test_kernel: false,
        icount: true,
        records: &ISOLATION_RT,
        deadlines: &ISOLATION_RT,
        failed: 0,
    },
    GuestImage {
        name: "isolation-pager-hang",
        system: "isolation-tests/images/pager-hang/system",
        tests: &[
            "hung_ts_pager_answers_nobody",
            "collector_word_reached_the_ts_side",
            "ts_side_makes_progress",
            "every_ts_check_reported_in_time",
        ],
        expect: &[Expect {
            name: "pager_stops_answering",
            needles: &["isolation-test pager: answering nobody from fault 300 on"],
        }],
        order: &[
            "isolation-test pager: answering nobody",
            "test ts_side_makes_progress ... ok",
            "roottask: task rt-crc32 ended",
        ],
        defmt: &[],
        test_kernel: false,
        icount: true,
        records: &ISOLATION_RT,
        deadlines: &ISOLATION_RT,
        failed: 0,
    },
    GuestImage {
        name: "isolation-irq-storm",
        system: "isolation-tests/images/irq-storm/system",
        tests: &[
            "ts_task_drives_an_interrupt_storm",
            "interrupt_storm_at_the_pit_rate",
            "ts_side_makes_progress",
            "every_ts_check_reported_in_time",
        ],
        expect: &[],
        order: &["isolation-test storm: 10000 interrupts taken", "roottask: task rt-crc32 ended"],
        defmt: &[],
        test_kernel: false,
        icount: true,
        records: &ISOLATION_RT,
        deadlines: &ISOLATION_RT,
        failed: 0,
    },
    GuestImage {
        name: "isolation-ts-spin",
        system: "isolation-tests/images/ts-spin/system",
        tests: &["ts_spinner_preempted_by_the_rt_side", "every_ts_check_reported_in_time"],
        expect: &[],
        order: &["test every_ts_check_reported_in_time ... ok", "roottask: task rt-crc32 ended"],
        defmt: &[],
        test_kernel: false,
        icount: true,
        records: &ISOLATION_RT,
        deadlines: &ISOLATION_RT,
        failed: 0,
    },
    GuestImage {
        name: "isolation-overrun",
        system: "isolation-tests/images/overrun/system",
        tests: &[
            "overrun_reported_to_its_handler",
            "overrun_held_at_its_budget_every_period",
            "overrunning_task_stopped_at_its_handlers_word",
            "ts_side_makes_progress",
            "every_ts_check_reported_in_time",
        ],
        expect: &[Expect {
            name: "overrun_stopped_and_counted_failed",
            needles: &[
                "isolation-test overrun: job 20 loops forever now",
                "roottask: task overrun stopped for good at the word of its handler watchdog",
                "0 crashed, 1 stopped by their handler; 1 failed",
            ],
        }],
        order: &["roottask: task overrun stopped for good", "roottask: task rt-crc32 ended"],
        defmt: &[],
        test_kernel: false,
        icount: true,
        // The overrunning task is an RT task of the run too, without records.
        records: &[],
        deadlines: &ISOLATION_RT,
        failed: 1,
    },
];

/// The RT side of every isolation image, with its job counts.
const ISOLATION_RT: [(&str, u32); 2] = [("rt-crc32", 500), ("rt-matmul", 120)];

/// Boots test image `img` on the production kernel and checks it.
pub fn run_image(img: &GuestImage, build: &Path, timeout: Duration) -> Result<(Vec<TestResult>, Outcome)> {
    run_image_on(img, build, timeout, &Qemu::selected(), "")
}

/// [`run_image`] under `qemu`, with `tag` (e.g. `qemu_10_0::`) in the test names.
pub fn run_image_on(
    img: &GuestImage,
    build: &Path,
    timeout: Duration,
    qemu: &Qemu,
    tag: &str,
) -> Result<(Vec<TestResult>, Outcome)> {
    let elf = build.join(if img.test_kernel { "kernel-test.elf" } else { "kernel.elf" });
    let image = crate::image::of(build, Path::new(img.system))?;
    let mut boot = Boot::new(&elf, if img.icount { Accel::TcgIcount } else { Accel::Tcg });
    boot.qemu = qemu.clone();
    boot.cmdline = if img.test_kernel { format!("test=system {}", image.cmdline) } else { image.cmdline.clone() };
    boot.modules = image.module_args();
    let defmt_bin = build.join(format!("defmt-image-{}{}.bin", img.name, tag.trim_end_matches(':')));
    let _ = std::fs::remove_file(&defmt_bin);
    boot.defmt_out = Some(defmt_bin.clone());
    let o = boot.run_captured(timeout, None)?;
    let prefix = format!("image::{tag}{}", img.name);
    let mut results = parse_guest_lines(&prefix, &o);
    for t in img.tests {
        if !results.iter().any(|r| r.name == format!("{prefix}::{t}")) {
            results.push(TestResult {
                name: format!("{prefix}::{t}"),
                ok: false,
                detail: "the test's line never appeared".into(),
            });
        }
    }
    let text = o.text();
    for e in img.expect {
        let missing: Vec<_> = e.needles.iter().filter(|n| !text.contains(**n)).collect();
        results.push(TestResult {
            name: format!("{prefix}::{}", e.name),
            ok: missing.is_empty(),
            detail: format!("missing from console: {missing:?}"),
        });
    }
    if !img.order.is_empty() {
        let at: Vec<Option<usize>> = img.order.iter().map(|n| text.find(n)).collect();
        let ok = at.iter().all(Option::is_some) && at.windows(2).all(|w| w[0] < w[1]);
        results.push(TestResult {
            name: format!("{prefix}::console_order"),
            ok,
            detail: format!("expected in this order: {:?}, found at {at:?}", img.order),
        });
    }
    if !img.records.is_empty() {
        let e = harness::verify::Expect { tasks: img.records, pmc: Some(false) };
        let (ok, detail) = match harness::verify::check_run(&text, &e) {
            Ok(s) => (true, format!("{s:?}")),
            Err(problems) => (false, problems.join("; ")),
        };
        results.push(TestResult { name: format!("{prefix}::job_records_complete_and_ordered"), ok, detail });
    }
    if !img.defmt.is_empty() {
        let log = crate::qemu::decode_defmt(&elf, &defmt_bin).map(|l| l.join("\n")).unwrap_or_default();
        let missing: Vec<_> = img.defmt.iter().filter(|n| !log.contains(**n)).collect();
        results.push(TestResult {
            name: format!("{prefix}::defmt_log_decodes"),
            ok: missing.is_empty(),
            detail: format!("missing from the decoded defmt log: {missing:?}"),
        });
    }
    if !img.deadlines.is_empty() {
        let (ok, detail) = deadlines_met(&text, img.deadlines);
        println!("note: {prefix}: {detail}");
        results.push(TestResult { name: format!("{prefix}::rt_deadlines_all_met"), ok, detail });
    }
    let detail = if o.timed_out {
        format!("guest hung: killed after {} s", timeout.as_secs())
    } else {
        format!("the root task's verdict: QEMU exit status {:?} {}", o.status, o.stderr.trim())
    };
    if img.failed == 0 {
        results.push(TestResult { name: format!("{prefix}::run_passed"), ok: o.status == Some(EXIT_PASS), detail });
    } else {
        let verdict = format!("; {} failed", img.failed);
        let ok =
            o.status == Some(EXIT_FAIL) && text.lines().any(|l| l.contains("run complete:") && l.ends_with(&verdict));
        results.push(TestResult { name: format!("{prefix}::run_fails_exactly_as_meant"), ok, detail });
    }
    Ok((results, o))
}

/// Checks that each of `tasks` (name, jobs) has all its job records in the
/// one run of `console` and missed no deadline; the figures per task
/// (misses, worst job and response time), or what is wrong.
pub fn deadlines_met(console: &str, tasks: &[(&str, u32)]) -> (bool, String) {
    let stream = record::read::read(console);
    let [run] = stream.runs.as_slice() else {
        return (false, format!("{} runs of job records in the console, expected one", stream.runs.len()));
    };
    let hz = run.header.as_ref().map_or(0, |h| h.tsc_hz);
    let mut ok = true;
    let mut parts = Vec::new();
    for &(name, want) in tasks {
        let Some(t) = run.tasks.iter().position(|t| t.name == name) else {
            ok = false;
            parts.push(format!("{name}: not in the run"));
            continue;
        };
        let jobs: Vec<_> = run.jobs.iter().filter(|j| usize::from(j.task) == t).collect();
        let misses = jobs.iter().filter(|j| j.deadline_miss).count();
        let worst = jobs.iter().map(|j| j.tsc_cycles()).max().unwrap_or(0);
        let response = jobs.iter().map(|j| j.response()).max().unwrap_or(0);
        // The latest start after its release, and which job: where a
        // response time comes from when the job time did not grow.
        let (delay, late) = jobs.iter().map(|j| (j.start.saturating_sub(j.release), j.job)).max().unwrap_or((0, 0));
        ok &= jobs.len() == want as usize && misses == 0;
        let us = |ticks: u64| if hz == 0 { f64::NAN } else { ticks as f64 * 1e6 / hz as f64 };
        parts.push(format!(
            "{name}: {} of {want} jobs, {misses} deadline miss(es), worst job {worst} ticks ({:.1} us), worst response {response} ticks ({:.1} us), latest start {delay} ticks after its release (job {late})",
            jobs.len(),
            us(worst),
            us(response)
        ));
    }
    (ok, parts.join("; "))
}

/// UEFI firmware for QEMU (Debian's `ovmf` package).
pub const OVMF: &str = "/usr/share/ovmf/OVMF.fd";

/// Boots the GRUB ISO (BIOS, or UEFI through `firmware`) and checks that
/// GRUB loads the kernel and its modules.
pub fn run_iso(iso: &Path, firmware: Option<&str>, timeout: Duration) -> Result<(Vec<TestResult>, Outcome)> {
    let mut boot = Boot::new(iso, Accel::Tcg);
    boot.cdrom = Some(iso.to_path_buf());
    if let Some(fw) = firmware {
        boot.extra = vec!["-bios".into(), fw.into()];
        boot.memory_mib = 256;
    }
    let prefix = if firmware.is_some() { "iso_uefi" } else { "iso" };
    let o = boot.run_captured(timeout, None)?;
    let text = o.text();
    let checks = [
        ("grub_loads_kernel", "boot: Multiboot v1 by \"GRUB"),
        ("sigma0_and_root_task_run_from_iso", "roottask: up"),
        ("root_task_completes_the_run", "roottask: run complete:"),
    ];
    let results = checks
        .iter()
        .map(|(name, needle)| TestResult {
            name: format!("{prefix}::{name}"),
            ok: text.contains(needle),
            detail: format!("{needle:?} not on the console"),
        })
        .collect();
    Ok((results, o))
}

/// Expected per-job counts of the kernel's `cache_model` pattern under the
/// plugin's `embedded` profile (L1D 32 KiB/4-way, last level 1 MiB/16-way,
/// 64-byte lines, LRU): each job loads every line of 8 pages of one color.
/// The L1D holds 4 such pages per color, so every job misses there; the
/// last level keeps the 8 color-0 pages until 16 more color-0 pages, touched
/// by kernel code outside any job, evict exactly those 8 lines in each of
/// the 64 sets (job 2: kernel interference). Job 4 runs in ring 3 on color
/// 2, and user code then touches 16 more color-2 pages outside any job
/// (user interference). An eviction takes a line from its job, so these
/// counts are all of the job's lines, whatever else ran.
pub fn cache_model_expectations() -> Vec<(&'static str, usize, &'static str, u64)> {
    let lines = 8 * 64;
    let l1d_lines = 4 * 64;
    let insns = 8 * (2 + 64 * 4 + 3);
    let mut v = Vec::new();
    for job in 0..5 {
        v.push(("loads in window", job, "mem_accesses", lines));
        v.push(("instructions in window", job, "instructions", insns));
        v.push(("L1D misses", job, "l1d_misses", lines));
    }
    v.extend([
        ("job 0 cold: last-level misses", 0, "llc_misses", lines),
        ("job 1 other color: last-level misses", 1, "llc_misses", lines),
        ("job 2 warm: last-level hits", 2, "llc_hits", lines),
        ("job 2 warm: last-level misses", 2, "llc_misses", 0),
        ("job 2 lines evicted from the last level by outside accesses", 2, "interference_llc", lines),
        ("job 2 lines evicted from L1D by outside accesses", 2, "interference_l1d", l1d_lines),
        ("job 2 last-level lines evicted by kernel code", 2, "interference_kernel_llc", lines),
        ("job 2 L1D lines evicted by kernel code", 2, "interference_kernel_l1d", l1d_lines),
        ("job 2 last-level lines evicted by user code", 2, "interference_user_llc", 0),
        ("job 2 L1D lines evicted by user code", 2, "interference_user_l1d", 0),
        ("job 3 after eviction: last-level misses", 3, "llc_misses", lines),
        ("job 4 ring 3, cold color: last-level misses", 4, "llc_misses", lines),
        ("job 4 last-level lines evicted by user code", 4, "interference_user_llc", lines),
        ("job 4 L1D lines evicted by user code", 4, "interference_user_l1d", l1d_lines),
        ("job 4 last-level lines evicted by kernel code", 4, "interference_kernel_llc", 0),
        ("job 4 L1D lines evicted by kernel code", 4, "interference_kernel_l1d", 0),
        ("job 4 lines evicted from the last level by outside accesses", 4, "interference_llc", lines),
    ]);
    v
}

/// The plugin API generation the cache-model plugin must pick on QEMU
/// `version` (`major.minor...`): 1 up to 8.x, 2 on 9.0, 3 from 9.1 on.
pub fn expected_plugin_api(version: &str) -> Option<u32> {
    let mut it = version.split('.').map(|p| p.parse::<u32>().ok());
    let (major, minor) = (it.next()??, it.next()??);
    Some(match (major, minor) {
        (..=8, _) => 1,
        (9, 0) => 2,
        _ => 3,
    })
}

/// Test-name part for a QEMU version: `qemu_10_0`.
fn qemu_tag(version: &str) -> String {
    format!("qemu_{}", version.split('.').take(2).collect::<Vec<_>>().join("_"))
}

/// Boots the test kernel's `cache_model` pattern twice in the `model` mode
/// under `qemu` and checks the CSV against [`cache_model_expectations`],
/// its first line (QEMU version, plugin API, inputs) and itself
/// (byte-identical).
pub fn run_cache_model(build: &Path, timeout: Duration, qemu: &Qemu) -> Result<(Vec<TestResult>, Outcome)> {
    let plugin = build.join("libcache_model.so");
    let version = qemu.version()?;
    let prefix = format!("model::cache_model::{}", qemu_tag(&version));
    let mut csvs = Vec::new();
    let mut outcome = None;
    for run in 0..2 {
        let out = build.join(format!("cache-model-test-{}-{run}.csv", qemu_tag(&version)));
        let _ = std::fs::remove_file(&out);
        let mut boot = Boot::new(build.join("kernel-test.elf"), Accel::TcgIcount);
        boot.qemu = qemu.clone();
        boot.cmdline = "test=cache_model".into();
        boot.with_cache_model(&plugin, "embedded", &out);
        let o = boot.run_captured(timeout, None)?;
        csvs.push(std::fs::read_to_string(&out).unwrap_or_default());
        outcome = Some(o);
    }
    let o = outcome.expect("two runs");
    let mut results = parse_guest_lines(&prefix, &o);
    results.push(TestResult {
        name: format!("{prefix}::exit_status"),
        ok: o.status == Some(EXIT_PASS),
        // A plugin that refuses this QEMU says why (and what it supports) on stderr.
        detail: format!("QEMU {version} exit status {:?} {}", o.status, o.stderr.trim()),
    });
    let csv = &csvs[0];
    let meta = csv.lines().next().unwrap_or("");
    let want_meta = format!(
        "# cache-model qemu={version} api={} ",
        expected_plugin_api(&version).map_or("?".into(), |a| a.to_string())
    );
    results.push(TestResult {
        name: format!("{prefix}::csv_names_qemu_api_and_inputs"),
        ok: meta.starts_with(&want_meta) && meta.contains(" inputs=data "),
        detail: format!("first line {meta:?}, expected it to start with {want_meta:?} and name inputs=data"),
    });
    let mut lines = csv.lines().filter(|l| !l.starts_with('#'));
    let header: Vec<&str> = lines.next().unwrap_or("").split(',').collect();
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    let cell = |job: usize, col: &str| -> Option<u64> {
        let c = header.iter().position(|h| *h == col)?;
        rows.get(job)?.get(c)?.parse().ok()
    };
    results.push(TestResult {
        name: format!("{prefix}::five_complete_jobs"),
        ok: rows.len() == 5 && (0..5).all(|j| cell(j, "complete") == Some(1)),
        detail: format!("CSV has {} rows: {csv:?}", rows.len()),
    });
    let mismatches: Vec<String> = cache_model_expectations()
        .into_iter()
        .filter(|(_, job, col, want)| cell(*job, col) != Some(*want))
        .map(|(what, job, col, want)| format!("{what}: job {job} {col} = {:?}, expected {want}", cell(job, col)))
        .collect();
    results.push(TestResult {
        name: format!("{prefix}::counts_match_geometry"),
        ok: mismatches.is_empty(),
        detail: mismatches.join("; "),
    });
    results.push(TestResult {
        name: format!("{prefix}::two_runs_byte_identical"),
        ok: !csvs[0].is_empty() && csvs[0] == csvs[1],
        detail: "the CSVs of two identical runs differ (or are empty)".into(),
    });
    Ok((results, o))
}

/// A boot to make: returns its results and the console it produced.
pub type BootRun = Box<dyn Fn() -> Result<(Vec<TestResult>, Outcome)>>;

/// One result line.
pub struct TestResult {
    pub name: String,
    pub ok: bool,
    pub detail: String,
}

/// Parses the guest's own test lines.
pub fn parse_guest_lines(prefix: &str, o: &Outcome) -> Vec<TestResult> {
    o.lines
        .iter()
        .filter_map(|(_, l)| {
            let rest = l.strip_prefix("test ")?;
            let (name, verdict) = rest.split_once(" ... ")?;
            Some(TestResult {
                name: format!("{prefix}::{name}"),
                ok: verdict == "ok",
                detail: verdict.strip_prefix("FAILED: ").unwrap_or("").to_string(),
            })
        })
        .collect()
}

/// Runs one boot and returns its results (guest lines, host checks, exit).
pub fn run_boot(b: &GuestBoot, build: &Path, timeout: Duration) -> Result<(Vec<TestResult>, Outcome)> {
    run_boot_on(b, build, timeout, &Qemu::selected(), "")
}

/// [`run_boot`] under `qemu`, with `tag` (e.g. `qemu_10_0::`) in the test names.
pub fn run_boot_on(
    b: &GuestBoot,
    build: &Path,
    timeout: Duration,
    qemu: &Qemu,
    tag: &str,
) -> Result<(Vec<TestResult>, Outcome)> {
    let elf = build.join("kernel-test.elf");
    let mut boot = Boot::new(&elf, Accel::Tcg);
    boot.qemu = qemu.clone();
    boot.cmdline = format!("test={}", b.test);
    let defmt_bin = build.join(format!("defmt-{}.bin", b.test));
    let _ = std::fs::remove_file(&defmt_bin);
    boot.defmt_out = Some(defmt_bin.clone());
    let root = build.join("modules/sigma0").display().to_string();
    boot.modules.push(match b.root_args {
        Some(a) => format!("{root} {a}"),
        None => root,
    });
    let o = boot.run_captured(timeout, None)?;
    let prefix = format!("{}::{tag}{}", b.name, b.test);
    let mut results = parse_guest_lines(&prefix, &o);
    let text = o.text();
    for e in b.expect {
        let missing: Vec<_> = e.needles.iter().filter(|n| !text.contains(**n)).collect();
        results.push(TestResult {
            name: format!("{prefix}::{}", e.name),
            ok: missing.is_empty(),
            detail: format!("missing from console: {missing:?}"),
        });
    }
    if !b.defmt.is_empty() {
        let (log, err) = match crate::qemu::decode_defmt(&elf, &defmt_bin) {
            Ok(l) => (l.join("\n"), String::new()),
            Err(e) => (String::new(), format!("{e:#}")),
        };
        let missing: Vec<_> = b.defmt.iter().filter(|n| !log.contains(**n)).collect();
        results.push(TestResult {
            name: format!("{prefix}::defmt_log_decodes"),
            ok: missing.is_empty(),
            detail: format!("missing from the decoded defmt log: {missing:?} {err}\n{log}"),
        });
    }
    let exit_ok = o.status == Some(EXIT_PASS);
    let detail = if o.timed_out {
        format!("guest hung: killed after {} s", timeout.as_secs())
    } else if o.status == Some(EXIT_FAIL) {
        "guest reported failure".to_string()
    } else {
        format!("unexpected QEMU exit status {:?} {}", o.status, o.stderr.trim())
    };
    results.push(TestResult { name: format!("{prefix}::exit_status"), ok: exit_ok, detail });
    Ok((results, o))
}

/// The boot that runs under every QEMU `prism test --also-qemu` names: the
/// complete boot into the root task in ring 3.
pub fn complete_boot() -> &'static GuestImage {
    IMAGES.iter().find(|b| b.name == "image").expect("the `image` test image")
}

/// Test-name part for the QEMU `q` (`qemu_10_0::`).
pub fn qemu_test_tag(q: &Qemu) -> Result<String> {
    Ok(format!("{}::", qemu_tag(&q.version()?)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plugin_api_expected_per_qemu_version() {
        assert_eq!(expected_plugin_api("7.2.22"), Some(1));
        assert_eq!(expected_plugin_api("8.2.2"), Some(1));
        assert_eq!(expected_plugin_api("9.0.0"), Some(2));
        assert_eq!(expected_plugin_api("9.1.3"), Some(3));
        assert_eq!(expected_plugin_api("10.0.2"), Some(3));
        assert_eq!(expected_plugin_api("ten"), None);
        assert_eq!(qemu_tag("10.0.2"), "qemu_10_0");
    }
}
