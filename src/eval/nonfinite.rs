//! Serde for floats that may be infinite (a curve's "nothing is fake" threshold): JSON has
//! no infinity, so they are written as the strings `"inf"` / `"-inf"` and read back.

use serde::{Deserialize, Deserializer, Serializer};

#[derive(Deserialize)]
#[serde(untagged)]
enum Text {
    Number(f64),
    Word(String),
}

fn parse<E: serde::de::Error>(value: Text) -> Result<f64, E> {
    match value {
        Text::Number(v) => Ok(v),
        Text::Word(w) => match w.as_str() {
            "inf" => Ok(f64::INFINITY),
            "-inf" => Ok(f64::NEG_INFINITY),
            other => Err(E::custom(format!(
                "expected a number, inf or -inf, got {other:?}"
            ))),
        },
    }
}

pub fn serialize<S: Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
    match *v {
        f64::INFINITY => s.serialize_str("inf"),
        f64::NEG_INFINITY => s.serialize_str("-inf"),
        v => s.serialize_f64(v),
    }
}

pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    parse(Text::deserialize(d)?)
}

/// The same for a vector of floats.
pub mod vec {
    use serde::ser::SerializeSeq;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(values: &[f64], s: S) -> Result<S::Ok, S::Error> {
        struct One(f64);
        impl serde::Serialize for One {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                super::serialize(&self.0, s)
            }
        }
        let mut seq = s.serialize_seq(Some(values.len()))?;
        for &v in values {
            seq.serialize_element(&One(v))?;
        }
        seq.end()
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<f64>, D::Error> {
        Vec::<super::Text>::deserialize(d)?
            .into_iter()
            .map(super::parse)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    #[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug)]
    struct Both {
        #[serde(with = "super")]
        one: f64,
        #[serde(with = "super::vec")]
        many: Vec<f64>,
    }

    #[test]
    fn infinities_survive_json() {
        let value = Both {
            one: f64::INFINITY,
            many: vec![f64::INFINITY, 0.25, f64::NEG_INFINITY],
        };
        let text = serde_json::to_string(&value).unwrap();
        assert_eq!(text, r#"{"one":"inf","many":["inf",0.25,"-inf"]}"#);
        assert_eq!(serde_json::from_str::<Both>(&text).unwrap(), value);
    }
}
