//! seccomp and no_new_privs through `berth run`: real containers under
//! berth's default profile, each refusal next to its twin that succeeds
//! (or fails differently) where the user lifted the control.

mod common;

use common::*;

fn run_sh(r: &Root, opts: &[&str], script: &str) -> std::process::Output {
    let mut args = vec!["--rm", "-q"];
    args.extend(opts);
    args.extend([BUSYBOX, "sh", "-c", script]);
    r.run(&args)
}

const UNCONFINED: &[&str] = &["--security-opt", "seccomp=unconfined"];

#[test]
fn default_profile_is_on_and_unconfined_turns_it_off() {
    let r = Root::new();
    let status = "grep '^Seccomp:' /proc/self/status";
    let o = run_sh(&r, &[], status);
    assert_eq!(stdout(&o), "Seccomp:\t2\n", "{}", stderr(&o));
    let o = run_sh(&r, UNCONFINED, status);
    assert_eq!(stdout(&o), "Seccomp:\t0\n", "{}", stderr(&o));
    // `builtin` names the default explicitly.
    let o = run_sh(&r, &["--security-opt", "seccomp=builtin"], status);
    assert_eq!(stdout(&o), "Seccomp:\t2\n", "{}", stderr(&o));
}

#[test]
fn no_new_privileges_sets_the_flag() {
    let r = Root::new();
    let nnp = "grep '^NoNewPrivs:' /proc/self/status";
    for (opts, want) in [
        (&[][..], "0"),
        (&["--security-opt", "no-new-privileges"][..], "1"),
        (&["--security-opt", "no-new-privileges:true"][..], "1"),
        (&["--security-opt", "no-new-privileges=false"][..], "0"),
    ] {
        let o = run_sh(&r, opts, nnp);
        assert_eq!(
            stdout(&o),
            format!("NoNewPrivs:\t{want}\n"),
            "{opts:?}: {}",
            stderr(&o)
        );
    }
    // Together with the default filter (installed last, after NNP).
    let o = run_sh(
        &r,
        &["--security-opt", "no-new-privileges"],
        "grep -E '^(NoNewPrivs|Seccomp):' /proc/self/status",
    );
    assert_eq!(
        stdout(&o),
        "NoNewPrivs:\t1\nSeccomp:\t2\n",
        "{}",
        stderr(&o)
    );
}

#[test]
fn user_namespaces_are_refused_unless_unconfined() {
    let r = Root::new();
    let script = "unshare -U true; echo rc=$?";
    let o = run_sh(&r, &[], script);
    assert_eq!(stdout(&o), "rc=1\n");
    assert!(
        stderr(&o).contains("Operation not permitted"),
        "{}",
        stderr(&o)
    );
    // Twin: without the filter an unprivileged user namespace is allowed,
    // and root of it may mount a tmpfs in its own mount namespace.
    let o = run_sh(&r, UNCONFINED, script);
    assert_eq!(stdout(&o), "rc=0\n", "{}", stderr(&o));
    let o = run_sh(
        &r,
        UNCONFINED,
        "unshare -Urm sh -c 'mount -t tmpfs none /tmp && echo mounted'",
    );
    assert_eq!(stdout(&o), "mounted\n", "{}", stderr(&o));
    let o = run_sh(
        &r,
        &[],
        "unshare -Urm sh -c 'mount -t tmpfs none /tmp && echo mounted'",
    );
    assert_eq!(stdout(&o), "", "{}", stderr(&o));
}

#[test]
fn mount_and_umount_are_refused_by_the_filter() {
    let r = Root::new();
    // The filter answers EPERM before the kernel looks at anything; without
    // it the kernel looks the target up first (ENOENT) and only then checks
    // CAP_SYS_ADMIN — so the twin proves which of the two refused.
    let script = "mount -t tmpfs none /no-such-dir; umount /no-such-dir";
    let o = run_sh(&r, &[], script);
    let err = stderr(&o);
    assert!(err.contains("mount: permission denied"), "{err}");
    assert!(
        err.contains("umount: can't unmount /no-such-dir: Operation not permitted"),
        "{err}"
    );
    let o = run_sh(&r, UNCONFINED, script);
    let err = stderr(&o);
    assert!(err.contains("No such file or directory"), "{err}");
    assert!(
        !err.contains("Operation not permitted") && !err.contains("permission denied"),
        "{err}"
    );
    // And the real thing fails under the default profile.
    let o = run_sh(&r, &[], "mount -t tmpfs none /tmp; echo rc=$?");
    assert_eq!(stdout(&o), "rc=1\n", "{}", stderr(&o));
}

#[test]
fn joining_namespaces_is_refused_by_the_filter() {
    let r = Root::new();
    // setns on a file that is not a namespace: EPERM from the filter,
    // EINVAL from the kernel without it.
    let script = "nsenter --mount=/etc/hostname true";
    let o = run_sh(&r, &[], script);
    assert!(
        stderr(&o).contains("Operation not permitted"),
        "{}",
        stderr(&o)
    );
    let o = run_sh(&r, UNCONFINED, script);
    assert!(stderr(&o).contains("Invalid argument"), "{}", stderr(&o));
}

#[test]
fn reboot_is_refused_unless_cap_sys_boot() {
    let r = Root::new();
    let o = run_sh(&r, &[], "reboot -f; echo rc=$?");
    assert_eq!(stdout(&o), "rc=1\n", "{}", stderr(&o));
    assert!(
        stderr(&o).contains("Operation not permitted"),
        "{}",
        stderr(&o)
    );
    // Twin: with CAP_SYS_BOOT the profile lets reboot(2) through, and in a
    // PID namespace the kernel only kills the namespace's init (exit 129,
    // SIGHUP), as in Docker. The guard makes sure this sh is that init: in
    // the host's PID namespace reboot(2) would be the host's.
    let o = run_sh(
        &r,
        &["--cap-add", "SYS_BOOT"],
        "[ $$ = 1 ] && reboot -f; echo not PID 1",
    );
    assert_eq!(code(&o), 129, "{}{}", stdout(&o), stderr(&o));
    assert_eq!(stdout(&o), "");
}

#[test]
fn cap_sys_admin_lets_mount_and_unshare_through_the_default_profile() {
    let r = Root::new();
    let script = "grep '^Seccomp:' /proc/self/status; \
                  mount -t tmpfs none /tmp && echo mounted; unshare -m true && echo unshared";
    let o = run_sh(&r, &["--cap-add", "SYS_ADMIN"], script);
    assert_eq!(
        stdout(&o),
        "Seccomp:\t2\nmounted\nunshared\n",
        "{}",
        stderr(&o)
    );
    // Twin: the same under the default capabilities (EPERM from the filter).
    let o = run_sh(&r, &[], script);
    assert_eq!(stdout(&o), "Seccomp:\t2\n", "{}", stderr(&o));
}

#[test]
fn privileged_runs_without_a_filter() {
    let r = Root::new();
    let profile = r.path().join("p.json");
    std::fs::write(&profile, r#"{"defaultAction": "SCMP_ACT_ALLOW"}"#).unwrap();
    let status = "grep '^Seccomp:' /proc/self/status";
    let o = run_sh(&r, &["--privileged"], status);
    assert_eq!(stdout(&o), "Seccomp:\t0\n", "{}", stderr(&o));
    // As in Docker, even when a profile is named.
    let opt = format!("seccomp={}", profile.display());
    let o = run_sh(&r, &["--privileged", "--security-opt", &opt], status);
    assert_eq!(stdout(&o), "Seccomp:\t0\n", "{}", stderr(&o));
    let o = run_sh(&r, &["--security-opt", &opt], status);
    assert_eq!(stdout(&o), "Seccomp:\t2\n", "{}", stderr(&o));
}

#[test]
fn custom_profile_denies_with_its_errno() {
    let r = Root::new();
    let profile = r.path().join("no-mkdir.json");
    std::fs::write(
        &profile,
        r#"{
            "defaultAction": "SCMP_ACT_ALLOW",
            "archMap": [{"architecture": "SCMP_ARCH_X86_64", "subArchitectures": ["SCMP_ARCH_X86", "SCMP_ARCH_X32"]}],
            "syscalls": [
                {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 122,
                 "comment": "EDQUOT: nothing else answers that here"}
            ]
        }"#,
    )
    .unwrap();
    let opt = format!("seccomp={}", profile.display());
    let o = run_sh(
        &r,
        &["--security-opt", &opt],
        "mkdir /x; echo rc=$?; touch /y && echo touched",
    );
    assert_eq!(stdout(&o), "rc=1\ntouched\n", "{}", stderr(&o));
    assert!(stderr(&o).contains("Disk quota exceeded"), "{}", stderr(&o));
    // Twin: the same command under the default profile.
    let o = run_sh(&r, &[], "mkdir /x && echo made");
    assert_eq!(stdout(&o), "made\n", "{}", stderr(&o));
}

#[test]
fn bad_profiles_and_options_fail_before_anything_runs() {
    let r = Root::new();
    let bad = r.path().join("bad.json");
    std::fs::write(
        &bad,
        r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdri"], "action": "SCMP_ACT_ERRNO"}]}"#,
    )
    .unwrap();
    let o = r.run(&[
        "--rm",
        "-q",
        "--security-opt",
        &format!("seccomp={}", bad.display()),
        BUSYBOX,
        "true",
    ]);
    assert_eq!(code(&o), 125);
    assert_eq!(
        stderr(&o),
        format!(
            "berth: seccomp profile {}: unknown syscall \"mkdri\"\n",
            bad.display()
        )
    );

    std::fs::write(
        &bad,
        r#"{"defaultAction": "SCMP_ACT_ALLOW", "sycalls": []}"#,
    )
    .unwrap();
    let o = r.run(&[
        "--rm",
        "-q",
        "--security-opt",
        &format!("seccomp={}", bad.display()),
        BUSYBOX,
        "true",
    ]);
    assert_eq!(code(&o), 125);
    assert!(
        stderr(&o).contains("unknown field `sycalls`"),
        "{}",
        stderr(&o)
    );
    assert_eq!(stderr(&o).lines().count(), 1, "{}", stderr(&o));

    let o = r.run(&[
        "--rm",
        "-q",
        "--security-opt",
        "seccomp=/no/such.json",
        BUSYBOX,
        "true",
    ]);
    assert_eq!(code(&o), 125);
    assert!(
        stderr(&o).starts_with("berth: seccomp profile /no/such.json: "),
        "{}",
        stderr(&o)
    );

    let o = r.run(&[
        "--rm",
        "-q",
        "--security-opt",
        "apparmor=docker-default",
        BUSYBOX,
        "true",
    ]);
    assert_eq!(code(&o), 125);
    assert!(
        stderr(&o).contains("invalid --security-opt \"apparmor=docker-default\""),
        "{}",
        stderr(&o)
    );
    // Nothing was created for any of them.
    let o = r.berth().args(["ps", "-aq"]).output().unwrap();
    assert_eq!(stdout(&o), "");
}
