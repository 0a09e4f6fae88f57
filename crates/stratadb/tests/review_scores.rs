//! Review findings (a spec probe): cosine scores of very large and very small vectors,
//! an empty `mset` into a run that accepts no writes, and a NaN score threshold.

use stratadb::prelude::*;

/// Cosine is scale-free: vectors with components near `1e20` or `1e-23` are finite and
/// have a direction, so they score like any other. Their `f32` squared norms overflow or
/// underflow, which made them score 0 (or ±∞ as queries) before.
#[test]
fn cosine_scores_do_not_depend_on_the_vectors_scale() -> Result<()> {
    // 3 vectors: the exact scan; 3,003: the graph (past the exact threshold of 2,000).
    for extra in [0usize, 3_000] {
        let db = Strata::ephemeral()?;
        let r = db.runs.default_run();
        db.vectors
            .create_collection(&r, "v", 2, DistanceMetric::Cosine)?;
        for i in 0..extra {
            let a = i as f32 * 0.001 + 2.0;
            db.vectors
                .upsert(&r, "v", &format!("n{i}"), &[a.cos(), a.sin()], None)?;
        }
        db.vectors.upsert(&r, "v", "big", &[1e20, 1e20], None)?;
        db.vectors.upsert(&r, "v", "tiny", &[1e-23, 1e-23], None)?;
        db.vectors.upsert(&r, "v", "unit", &[1.0, 1.0], None)?;
        for q in [[1.0f32, 1.0], [1e20, 1e20], [1e-23, 1e-23], [3e38, 3e38]] {
            let hits = db.vectors.search(&r, "v", &q, 3, None)?;
            let mut keys: Vec<&str> = hits.iter().map(|h| h.key.as_str()).collect();
            keys.sort_unstable();
            assert_eq!(keys, ["big", "tiny", "unit"], "query {q:?}, {extra} others");
            for h in &hits {
                assert!(
                    (h.score - 1.0).abs() < 1e-5,
                    "query {q:?}: {} scored {}",
                    h.key,
                    h.score
                );
            }
            let kept = db
                .vectors
                .search_with_threshold(&r, "v", &q, 3, 0.9, None)?;
            assert_eq!(kept.len(), 3, "query {q:?}, {extra} others");
        }
        // Opposite directions score -1, within the documented range.
        let hits = db.vectors.search(&r, "v", &[-1e20, -1e20], 10, None)?;
        for h in &hits {
            assert!(
                (-1.0..=1.0).contains(&h.score),
                "{} scored {}",
                h.key,
                h.score
            );
        }
        let big = hits.iter().find(|h| h.key == "big");
        if let Some(big) = big {
            assert!((big.score + 1.0).abs() < 1e-5, "{}", big.score);
        }
    }
    Ok(())
}

#[test]
fn an_empty_mset_into_a_run_that_takes_no_writes_is_refused_like_a_full_one() -> Result<()> {
    let db = Strata::ephemeral()?;
    let closed = db.runs.create(None)?;
    db.runs.close(&closed)?;
    assert!(matches!(db.kv.mset(&closed, &[]), Err(Error::RunError(_))));
    assert!(matches!(
        db.kv.mset(&closed, &[("k", Value::Int(1))]),
        Err(Error::RunError(_))
    ));
    assert!(matches!(
        db.kv.mset(&RunId::new(), &[]),
        Err(Error::RunError(_))
    ));
    // Into an open run it is still a no-op that reports the current version.
    let open = db.runs.create(None)?;
    db.kv.set_in(&open, "a", 1i64)?;
    let set = db.kv.get_in(&open, "a")?.expect("just set").version;
    assert!(db.kv.mset(&open, &[])? >= set);
    Ok(())
}

#[test]
fn a_nan_score_threshold_is_refused() -> Result<()> {
    let db = Strata::ephemeral()?;
    let r = db.runs.default_run();
    db.vectors
        .create_collection(&r, "v", 2, DistanceMetric::Cosine)?;
    db.vectors.upsert(&r, "v", "a", &[0.0, 1.0], None)?;
    let err = db
        .vectors
        .search_with_threshold(&r, "v", &[0.0, 1.0], 5, f32::NAN, None)
        .unwrap_err();
    assert!(matches!(err, Error::ConstraintViolation(_)), "{err}");
    assert_eq!(
        db.vectors
            .search_with_threshold(&r, "v", &[0.0, 1.0], 5, f32::NEG_INFINITY, None)?
            .len(),
        1
    );
    assert!(db
        .vectors
        .search_with_threshold(&r, "v", &[0.0, 1.0], 5, f32::INFINITY, None)?
        .is_empty());
    Ok(())
}
