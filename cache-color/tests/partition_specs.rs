//! Partition specs: malformed specs each give their exact typed error, and
//! whole configurations are validated against a geometry.

use cache_color::{
    check_each, parse_colors, validate, validate_into, validate_into_with, validate_with, ColorMap, ColorSet,
    MemRegion, Partition, PartitionError, PartitionSpec, Sharing, SpecError, EMBEDDED_1M_16W, MAX_COLORS, ZEN4,
};

/// 16 colors.
fn embedded() -> ColorMap {
    ColorMap::for_geometry(&EMBEDDED_1M_16W).unwrap()
}

const MIB: u64 = 1 << 20;

#[test]
fn malformed_specs_give_exact_errors() {
    use SpecError::*;
    let cases: &[(&str, SpecError<'static>)] = &[
        ("", Empty),
        ("   ", Empty),
        ("0-7,,9", EmptyItem { position: 1 }),
        ("0-7,", EmptyItem { position: 1 }),
        (",3", EmptyItem { position: 0 }),
        ("1, ,2", EmptyItem { position: 1 }),
        ("a", Syntax { token: "a" }),
        ("0-7,x-9", Syntax { token: "x-9" }),
        ("3-", Syntax { token: "3-" }),
        ("-3", Syntax { token: "-3" }),
        ("1-2-3", Syntax { token: "1-2-3" }),
        ("0x3", Syntax { token: "0x3" }),
        ("+1", Syntax { token: "+1" }),
        ("1 2", Syntax { token: "1 2" }),
        ("0;1", Syntax { token: "0;1" }),
        ("0..3", Syntax { token: "0..3" }),
        ("99999999999", NumberTooLarge { token: "99999999999" }),
        ("0-4294967296", NumberTooLarge { token: "0-4294967296" }),
        ("7-3", DescendingRange { token: "7-3" }),
        ("0,9-8", DescendingRange { token: "9-8" }),
        ("0-7,5", Overlap { token: "5", color: 5 }),
        ("0-3,3-5", Overlap { token: "3-5", color: 3 }),
        ("4,4", Overlap { token: "4", color: 4 }),
        ("0-3,8,2-9", Overlap { token: "2-9", color: 2 }),
        ("8,3", NotAscending { token: "3", previous: "8" }),
        ("0-3,10,5-6", NotAscending { token: "5-6", previous: "10" }),
        ("0-16", BeyondGeometry { token: "0-16", color: 16, colors: 16 }),
        ("3,12-15,16", BeyondGeometry { token: "16", color: 16, colors: 16 }),
        ("4294967295", BeyondGeometry { token: "4294967295", color: u32::MAX, colors: 16 }),
    ];
    assert!(cases.len() >= 15);
    for (spec, expect) in cases {
        assert_eq!(parse_colors(spec, 16), Err(*expect), "spec {spec:?}");
        // The same error, wrapped with the partition's name and spec.
        let specs = [PartitionSpec::new("rt", spec)];
        assert_eq!(
            validate(&specs, &embedded(), &[]),
            Err(PartitionError::Spec { partition: "rt", spec, error: *expect }),
            "spec {spec:?}"
        );
    }
}

#[test]
fn good_specs() {
    let cases: &[(&str, &[u32])] = &[
        ("0-7,12,14-15", &[0, 1, 2, 3, 4, 5, 6, 7, 12, 14, 15]),
        ("0", &[0]),
        ("15", &[15]),
        ("0-3, 4-7", &[0, 1, 2, 3, 4, 5, 6, 7]),
        (" 2 - 4 ", &[2, 3, 4]),
        ("01,002", &[1, 2]),
    ];
    for (spec, colors) in cases {
        let got = parse_colors(spec, 16).unwrap();
        assert_eq!(got, ColorSet::from_colors(colors).unwrap(), "spec {spec:?}");
    }
    // Without a geometry: MAX_COLORS.
    assert_eq!(parse_colors("0-4095", MAX_COLORS as u32).unwrap().len(), MAX_COLORS);
    assert_eq!(
        parse_colors("4096", u32::MAX),
        Err(SpecError::BeyondGeometry { token: "4096", color: 4096, colors: 4096 })
    );
}

#[test]
fn overlapping_partitions_name_both() {
    let specs = [PartitionSpec::new("rt", "0-7"), PartitionSpec::new("ts", "8-11"), PartitionSpec::new("io", "11-15")];
    let err = validate(&specs, &embedded(), &[]).unwrap_err();
    assert_eq!(err, PartitionError::Overlap { first: "ts", second: "io", color: 11 });
    assert_eq!(err.to_string(), "partitions \"ts\" and \"io\" overlap (both own color 11)");
}

#[test]
fn duplicate_and_empty_names() {
    let specs = [PartitionSpec::new("rt", "0-7"), PartitionSpec::new("rt", "8-15")];
    assert_eq!(validate(&specs, &embedded(), &[]), Err(PartitionError::DuplicateName { name: "rt" }));
    let specs = [PartitionSpec::new("rt", "0-7"), PartitionSpec::new(" ", "8-15")];
    assert_eq!(validate(&specs, &embedded(), &[]), Err(PartitionError::EmptyName { index: 1 }));
}

#[test]
fn declared_memory_must_fit() {
    let memory = [MemRegion::new(0, 64 * MIB)];
    // One color of 16 holds 4 MiB of 64 MiB.
    let specs =
        [PartitionSpec::new("rt", "0").with_memory(4 * MIB), PartitionSpec::new("ts", "1-2").with_memory(8 * MIB + 1)];
    let err = validate(&specs, &embedded(), &memory).unwrap_err();
    assert_eq!(
        err,
        PartitionError::InsufficientMemory { partition: "ts", spec: "1-2", needed: 8 * MIB + 1, capacity: 8 * MIB }
    );
    assert!(err.to_string().contains("colors \"1-2\" hold 8388608 bytes"));
    // Two regions with a hole: colors count in both.
    let memory = [MemRegion::new(0, 640 << 10), MemRegion::new(MIB, 63 * MIB)];
    let specs = [PartitionSpec::new("rt", "0-7").with_memory(31 * MIB)];
    validate(&specs, &embedded(), &memory).unwrap();
}

#[test]
fn validate_into_returns_sets() {
    let map = ColorMap::for_geometry(&ZEN4).unwrap();
    let memory = [MemRegion::new(0, 1 << 30)];
    let specs = [
        PartitionSpec::new("rt", "0-63").with_memory(64 * MIB),
        PartitionSpec::new("ts", "64-511").with_memory(512 * MIB),
    ];
    let mut out = [Partition::EMPTY; 4];
    let parts = validate_into(&specs, &map, &memory, &mut out).unwrap();
    assert_eq!(parts.len(), 2);
    assert_eq!(parts[0].name, "rt");
    assert_eq!(parts[0].colors, ColorSet::range(0, 63).unwrap());
    assert_eq!(parts[1].colors.len(), 448);
    assert!(parts[0].colors.is_disjoint(&parts[1].colors));
    assert_eq!(parts[0].capacity(&map, &memory), 128 * MIB);
    let mut small = [Partition::EMPTY; 1];
    assert_eq!(
        validate_into(&specs, &map, &memory, &mut small).unwrap_err(),
        PartitionError::TooManyPartitions { max: 1 }
    );
}

#[test]
fn messages_name_the_offending_text() {
    let map = embedded();
    let msg = |spec: &'static str| validate(&[PartitionSpec::new("rt", spec)], &map, &[]).unwrap_err().to_string();
    assert_eq!(msg("0-7,x-9"), "partition \"rt\": colors \"0-7,x-9\": syntax error at \"x-9\": expected N or N-M");
    assert_eq!(msg("7-3"), "partition \"rt\": colors \"7-3\": descending range \"7-3\"");
    assert_eq!(msg("0-7,5"), "partition \"rt\": colors \"0-7,5\": \"5\" repeats color 5");
    assert_eq!(msg("8,3"), "partition \"rt\": colors \"8,3\": \"3\" is not above the item \"8\" before it");
    assert_eq!(
        msg("0-16"),
        "partition \"rt\": colors \"0-16\": color 16 in \"0-16\" is beyond the geometry's 16 colors (0-15)"
    );
    assert_eq!(msg(""), "partition \"rt\": colors \"\": empty color set");
    assert_eq!(msg("1,,2"), "partition \"rt\": colors \"1,,2\": empty item at position 1 (stray comma)");
}

#[test]
fn sharing_allows_overlap_but_a_group_must_fit_together() {
    let memory = [MemRegion::new(0, 32 * MIB)];
    // Each of 16 colors holds 2 MiB of 32 MiB.
    let specs =
        [PartitionSpec::new("rt", "0-15").with_memory(4 * MIB), PartitionSpec::new("ts", "0-15").with_memory(16 * MIB)];
    assert_eq!(
        validate_with(&specs, &embedded(), &memory, Sharing::Disjoint),
        Err(PartitionError::Overlap { first: "rt", second: "ts", color: 0 })
    );
    let mut out = [Partition::EMPTY; 2];
    let parts = validate_into_with(&specs, &embedded(), &memory, Sharing::Allowed, &mut out).unwrap();
    assert_eq!(parts[0].colors, parts[1].colors);
    // Each fits alone (32 MiB), not together in a 16 MiB machine.
    let small = [MemRegion::new(0, 16 * MIB)];
    let specs =
        [PartitionSpec::new("rt", "0-15").with_memory(4 * MIB), PartitionSpec::new("ts", "0-15").with_memory(14 * MIB)];
    let err = validate_with(&specs, &embedded(), &small, Sharing::Allowed).unwrap_err();
    assert_eq!(
        err,
        PartitionError::SharedInsufficientMemory { first: "rt", partitions: 2, needed: 18 * MIB, capacity: 16 * MIB }
    );
    assert!(err.to_string().contains("1 other(s) sharing its colors need 18874368 bytes"), "{err}");
}

#[test]
fn a_sharing_group_is_transitive_and_disjoint_partitions_stay_apart() {
    let memory = [MemRegion::new(0, 16 * MIB)];
    // 1 MiB per color. a meets b, b meets c, a and c do not meet: one group
    // of colors 0-7 (8 MiB) needing 9 MiB; d on its own colors is fine.
    let specs = [
        PartitionSpec::new("a", "0-3").with_memory(3 * MIB),
        PartitionSpec::new("b", "3-5").with_memory(3 * MIB),
        PartitionSpec::new("c", "5-7").with_memory(3 * MIB),
        PartitionSpec::new("d", "8-15").with_memory(8 * MIB),
    ];
    assert_eq!(
        validate_with(&specs, &embedded(), &memory, Sharing::Allowed),
        Err(PartitionError::SharedInsufficientMemory { first: "a", partitions: 3, needed: 9 * MIB, capacity: 8 * MIB })
    );
    let fits = [specs[0], specs[1], specs[2].with_memory(2 * MIB), specs[3]];
    validate_with(&fits, &embedded(), &memory, Sharing::Allowed).unwrap();
}

#[test]
fn check_each_reports_every_failure_with_its_partition() {
    let memory = [MemRegion::new(0, 16 * MIB)];
    let specs = [
        PartitionSpec::new("rt", "0-7"),
        PartitionSpec::new("", "8"),
        PartitionSpec::new("rt", "9,x"),
        PartitionSpec::new("io", "7-9"),
        PartitionSpec::new("big", "10").with_memory(2 * MIB),
    ];
    let mut seen = Vec::new();
    let n = check_each(&specs, &embedded(), &memory, Sharing::Disjoint, |i, e| seen.push((i, e)));
    assert_eq!(n, 5);
    assert_eq!(
        seen,
        [
            (1, PartitionError::EmptyName { index: 1 }),
            (2, PartitionError::DuplicateName { name: "rt" }),
            (2, PartitionError::Spec { partition: "rt", spec: "9,x", error: SpecError::Syntax { token: "x" } }),
            (3, PartitionError::Overlap { first: "rt", second: "io", color: 7 }),
            (4, PartitionError::InsufficientMemory { partition: "big", spec: "10", needed: 2 * MIB, capacity: MIB }),
        ]
    );
    // The first of them is what validate reports.
    assert_eq!(validate(&specs, &embedded(), &memory), Err(seen[0].1));
}
