//! What the filled library holds, as a pure function of the item number:
//! each movie's guid, title, year, media item and file, and its thumbnail
//! blob. The fill writes exactly this and every check compares against it,
//! so a check needs no copy of the data (a forked child can check too).

/// Library section of the filled movies.
pub const MOVIES_SECTION: i64 = 1;
/// Library section the Scanner writes its media into (the checks of the
/// movies never see it).
pub const SCANNER_SECTION: i64 = 2;
/// `metadata_type` of a movie in Plex.
pub const MOVIE_TYPE: i64 = 1;
/// `blob_type` of a thumbnail in the blobs database.
pub const THUMB_BLOB_TYPE: i64 = 1;
/// Time stamp the fill counts from (2024-01-01T00:00:00Z).
pub const EPOCH: i64 = 1_704_067_200;

/// SplitMix64: a fixed, well-mixed 64-bit value for each input.
pub fn mix(i: i64) -> u64 {
    let mut z = (i as u64).wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The library's content: `items` movies, ids `1..=items` in every table.
#[derive(Clone, Copy, Debug)]
pub struct Catalog {
    pub items: i64,
}

impl Catalog {
    /// How many items have a thumbnail in the blobs database.
    pub fn blob_items(&self) -> i64 {
        self.items.min(1000)
    }

    pub fn guid(i: i64) -> String {
        format!("plex://movie/{:016x}{:08x}", mix(i), i)
    }

    pub fn title(i: i64) -> String {
        format!("Movie {i:05}")
    }

    pub fn year(i: i64) -> i64 {
        1950 + (mix(i) % 75) as i64
    }

    pub fn duration_ms(i: i64) -> i64 {
        3_600_000 + (mix(i ^ 0x55) % 3_600_000) as i64
    }

    pub fn added_at(i: i64) -> i64 {
        EPOCH + i * 60
    }

    /// `display_aspect_ratio` of the item's media (a REAL column).
    pub fn aspect_ratio(i: i64) -> f64 {
        [1.78, 2.35, 1.33][(i % 3) as usize]
    }

    pub fn part_file(i: i64) -> String {
        let (title, year) = (Self::title(i), Self::year(i));
        format!("/data/Movies/{title} ({year})/{title}.mkv")
    }

    pub fn part_size(i: i64) -> i64 {
        1_000_000_000 + (mix(i ^ 0xAA) % 9_000_000_000) as i64
    }

    /// The thumbnail: 64 to 1087 bytes, every byte drawn from the item number.
    pub fn blob(i: i64) -> Vec<u8> {
        let len = 64 + (mix(i ^ 0xB10B) % 1024) as usize;
        (0..len)
            .map(|k| (mix(i * 4096 + k as i64) & 0xFF) as u8)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guids_are_distinct_and_plex_shaped() {
        let guids: std::collections::HashSet<String> = (1..=5000).map(Catalog::guid).collect();
        assert_eq!(guids.len(), 5000);
        assert!(Catalog::guid(7).starts_with("plex://movie/") && Catalog::guid(7).len() == 37);
    }

    #[test]
    fn blobs_differ_between_items() {
        assert_ne!(Catalog::blob(1), Catalog::blob(2));
        assert!((64..1088).contains(&Catalog::blob(3).len()));
    }
}
