//! Parsing and normalising image references, as Docker does.

use berth_image::{Reference, ReferenceError};

const FF: &str = "sha256:ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff";

fn p(s: &str) -> Reference {
    Reference::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
}

#[test]
fn docker_hub_normalisation() {
    let r = p("alpine").with_default_tag();
    assert_eq!(r.to_string(), "docker.io/library/alpine:latest");
    assert_eq!(r.familiar(), "alpine:latest");
    assert_eq!(r.api_host(), "registry-1.docker.io");
    assert_eq!(p("user/app:tag").to_string(), "docker.io/user/app:tag");
    assert_eq!(p("user/app:tag").familiar(), "user/app:tag");
    assert_eq!(p("docker.io/library/debian").familiar_name(), "debian");
    assert_eq!(
        p("index.docker.io/debian").to_string(),
        "docker.io/library/debian"
    );
    assert_eq!(
        p("docker.io/debian").to_string(),
        "docker.io/library/debian"
    );
    assert_eq!(p("library/debian").to_string(), "docker.io/library/debian");
}

#[test]
fn registry_hosts() {
    let r = p("localhost/x");
    assert_eq!(
        (r.registry.as_str(), r.repository.as_str()),
        ("localhost", "x")
    );
    let r = p(&format!("host:5000/ns/app@{FF}"));
    assert_eq!(r.registry, "host:5000");
    assert_eq!(r.repository, "ns/app");
    assert_eq!(r.tag, None);
    assert_eq!(r.digest.as_ref().unwrap().as_str(), FF);
    assert_eq!(r.manifest_ref(), FF);
    // A digest reference does not get a default tag.
    assert_eq!(r.clone().with_default_tag().tag, None);
    let r = p(&format!("test:5000/repo:tag@{FF}"));
    assert_eq!(r.tag.as_deref(), Some("tag"));
    assert_eq!(r.manifest_ref(), FF, "digest wins over tag");
    assert_eq!(r.to_string(), format!("test:5000/repo:tag@{FF}"));
    assert_eq!(p("127.0.0.1:5000/debian").registry, "127.0.0.1:5000");
    assert_eq!(p("[::1]:5000/debian").registry, "[::1]:5000");
    assert_eq!(p("Uppercase.io/lower").registry, "Uppercase.io");
}

#[test]
fn grammar_examples() {
    // (input, registry, repository, tag)
    let cases = [
        ("test_com", "docker.io", "library/test_com", None),
        ("test.com:tag", "docker.io", "library/test.com", Some("tag")),
        (
            "test.com:5000",
            "docker.io",
            "library/test.com",
            Some("5000"),
        ),
        ("test.com/repo:tag", "test.com", "repo", Some("tag")),
        ("test:5000/repo", "test:5000", "repo", None),
        (
            "sub-dom1.foo.com/bar/baz/quux:some-long-tag",
            "sub-dom1.foo.com",
            "bar/baz/quux",
            Some("some-long-tag"),
        ),
        (
            "b.gcr.io/test.example.com/my-app:test.example.com",
            "b.gcr.io",
            "test.example.com/my-app",
            Some("test.example.com"),
        ),
        (
            "xn--n3h.com/myimage:xn--n3h.com",
            "xn--n3h.com",
            "myimage",
            Some("xn--n3h.com"),
        ),
        (
            "foo_bar.com:8080",
            "docker.io",
            "library/foo_bar.com",
            Some("8080"),
        ),
        (
            "foo/foo_bar.com:8080",
            "docker.io",
            "foo/foo_bar.com",
            Some("8080"),
        ),
        ("a/b__c/d---e.f", "docker.io", "a/b__c/d---e.f", None),
        ("test-com:8080/foo", "test-com:8080", "foo", None),
    ];
    for (input, reg, repo, tag) in cases {
        let r = p(input);
        assert_eq!(r.registry, reg, "{input}");
        assert_eq!(r.repository, repo, "{input}");
        assert_eq!(r.tag.as_deref(), tag, "{input}");
    }
    // Long but legal: the tag does not count toward the name limit.
    let long = format!("{}a:tag-puts-this-over-max", "a/".repeat(127));
    assert_eq!(p(&long).tag.as_deref(), Some("tag-puts-this-over-max"));
}

#[test]
fn invalid_references() {
    use ReferenceError as E;
    assert_eq!(Reference::parse(""), Err(E::Empty));
    assert!(matches!(Reference::parse(":justtag"), Err(E::Format(_))));
    assert!(Reference::parse(&format!("@{FF}")).is_err());
    assert!(matches!(
        Reference::parse(&format!("validname@invaliddigest:{}", "f".repeat(64))),
        Err(E::Digest(_))
    ));
    assert!(matches!(
        Reference::parse("x@sha256:abc"),
        Err(E::Digest(_))
    ));
    assert!(matches!(
        Reference::parse(&format!("{}a:tag", "a/".repeat(128))),
        Err(E::NameTooLong(257))
    ));
    assert!(matches!(
        Reference::parse("aa/asdf$$^/aa"),
        Err(E::Format(_))
    ));
    let e = Reference::parse("Uppercase:tag").unwrap_err();
    assert_eq!(e, E::Uppercase("Uppercase".into()));
    assert!(e.to_string().contains("must be lowercase"), "{e}");
    assert!(matches!(
        Reference::parse("docker.io/User/app"),
        Err(E::Uppercase(_))
    ));
    assert!(Reference::parse("a:bad/tag").is_err());
    assert!(matches!(Reference::parse("a:-tag"), Err(E::Tag(_))));
    assert!(matches!(
        Reference::parse(&format!("a:{}", "t".repeat(129))),
        Err(E::Tag(_))
    ));
    assert!(matches!(Reference::parse("a__b___c"), Err(E::Format(_))));
    assert!(matches!(Reference::parse("-a"), Err(E::Format(_))));
    assert!(matches!(Reference::parse("a."), Err(E::Format(_))));
    assert!(matches!(Reference::parse("host:port/x"), Err(E::Domain(_))));
    assert!(matches!(Reference::parse("a//b"), Err(E::Format(_))));
    assert!(matches!(
        Reference::parse(&"f".repeat(64)),
        Err(E::HexName(_))
    ));
    // With a namespace it is just a name.
    assert!(Reference::parse(&format!("ns/{}", "f".repeat(64))).is_ok());
}

#[test]
fn uppercase_first_component_is_a_repository_not_a_host() {
    use ReferenceError as E;
    // Without `.`, `:` or `localhost` it names no host: berth must not
    // go and look up a host called "UPPER".
    for (input, path) in [
        ("UPPER/case", "UPPER/case"),
        ("UPPER/case:tag", "UPPER/case"),
        ("Org/team/app", "Org/team/app"),
        ("lower/Upper", "lower/Upper"),
    ] {
        let e = Reference::parse(input).unwrap_err();
        assert_eq!(e, E::Uppercase(path.into()), "{input}");
        assert_eq!(
            e.to_string(),
            format!("invalid reference format: repository name ({path}) must be lowercase")
        );
    }
    // Hosts may still be any case; only the repository must be lowercase.
    assert_eq!(
        p("Registry.Example.com/app").registry,
        "Registry.Example.com"
    );
    assert_eq!(p("MyHost:5000/app").registry, "MyHost:5000");
    assert_eq!(p("localhost/app").registry, "localhost");
    assert!(matches!(
        Reference::parse("LOCALHOST/app"),
        Err(E::Uppercase(_))
    ));
}
