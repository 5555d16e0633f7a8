//! Closed sets of words (`IfNotPresent`, `Parallel`, `openmpi`): one enum each, declared with the words
//! users write, so the values schema, `--help`, state files and rendered objects all spell them alike.

use crate::tree::describe;
use crate::validate::did_you_mean;

/// Declares an enum whose variants are written as the given words: `parse`, `as_str`, `WORDS`,
/// `Display`, `FromStr`, serde (as the word) and its values schema (one of `WORDS`).
macro_rules! word_enum {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident {
            $($(#[$variant_meta:meta])* $variant:ident = $word:literal,)+
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        $vis enum $name {
            $($(#[$variant_meta])* $variant,)+
        }

        impl $name {
            /// Every word, in declaration order.
            pub const WORDS: &'static [&'static str] = &[$($word),+];

            pub fn parse(word: &str) -> Option<Self> {
                match word {
                    $($word => Some(Self::$variant),)+
                    _ => None,
                }
            }

            pub fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $word,)+
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl std::str::FromStr for $name {
            type Err = String;

            fn from_str(word: &str) -> Result<Self, String> {
                Self::parse(word).ok_or_else(|| $crate::word::not_one_of(Self::WORDS, &serde_json::Value::from(word)))
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let value = serde_json::Value::deserialize(deserializer)?;
                value.as_str().and_then(Self::parse).ok_or_else(|| serde::de::Error::custom($crate::word::not_one_of(Self::WORDS, &value)))
            }
        }

        impl $crate::schema::Schema for $name {
            type Paths = $crate::tree::YamlPath;
            const NODE: $crate::schema::Node = $crate::schema::Node::Leaf($crate::schema::deserializes::<Self>);
            fn paths(at: $crate::tree::YamlPath) -> Self::Paths {
                at
            }
        }
    };
}

pub(crate) use word_enum;

/// Why a value is none of the words, with the likely one when it looks like a typo.
pub fn not_one_of(words: &[&str], value: &serde_json::Value) -> String {
    let hint = value.as_str().and_then(|s| did_you_mean(s, words)).map(|s| format!(" (did you mean {s:?}?)")).unwrap_or_default();
    format!("expected one of {}, got {}{hint}", words.join(", "), describe(value))
}

#[cfg(test)]
mod tests {
    use crate::cluster::{MpiImplementation, PullPolicy};

    #[test]
    fn words_round_trip_through_every_form() {
        for &word in PullPolicy::WORDS {
            let policy = PullPolicy::parse(word).unwrap();
            assert_eq!(policy.as_str(), word);
            assert_eq!(policy.to_string(), word);
            assert_eq!(serde_json::to_value(policy).unwrap(), serde_json::json!(word));
            assert_eq!(serde_json::from_value::<PullPolicy>(serde_json::json!(word)).unwrap(), policy);
        }
        assert_eq!("mpich".parse::<MpiImplementation>(), Ok(MpiImplementation::Mpich));
        assert_eq!("lam".parse::<MpiImplementation>().unwrap_err(), "expected one of openmpi, mpich, intel, got \"lam\"");
        assert!(serde_json::from_value::<PullPolicy>(serde_json::json!("always")).is_err());
    }
}
