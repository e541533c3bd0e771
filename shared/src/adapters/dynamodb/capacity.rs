//! DynamoDB capacity consumed through the adapters. Off by default (the functions count
//! nothing, and their requests ask for nothing); a [`Capacity::counting`] shared by the adapters
//! makes every request ask for `ReturnConsumedCapacity::Total` and sums the units. The capacity
//! test and the cost figures in docs/benchmarks.md count through it; a write whose condition
//! failed returns no figure, so it is counted by the item's size, as DynamoDB bills it.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use aws_sdk_dynamodb::operation::get_item::GetItemOutput;
use aws_sdk_dynamodb::operation::put_item::PutItemOutput;
use aws_sdk_dynamodb::operation::query::QueryOutput;
use aws_sdk_dynamodb::operation::scan::ScanOutput;
use aws_sdk_dynamodb::operation::update_item::UpdateItemOutput;
use aws_sdk_dynamodb::types::{AttributeValue, ConsumedCapacity, ReturnConsumedCapacity};

/// Read and write units consumed, summed.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Units {
    pub read: f64,
    pub write: f64,
}

/// The units consumed through every adapter holding a clone of it, by table; `default()`
/// counts nothing.
#[derive(Debug, Clone, Default)]
pub struct Capacity(Option<Arc<Mutex<BTreeMap<String, Units>>>>);

impl Capacity {
    /// A shared count: every request of the adapters given a clone asks for its capacity.
    pub fn counting() -> Self {
        Capacity(Some(Arc::default()))
    }

    /// What a request asks DynamoDB to return.
    pub(crate) fn mode(&self) -> Option<ReturnConsumedCapacity> {
        self.0.as_ref().map(|_| ReturnConsumedCapacity::Total)
    }

    /// Everything consumed.
    pub fn units(&self) -> Units {
        self.by_table()
            .values()
            .fold(Units::default(), |sum, u| Units {
                read: sum.read + u.read,
                write: sum.write + u.write,
            })
    }

    /// What each table (its indexes included) consumed.
    pub fn by_table(&self) -> BTreeMap<String, Units> {
        self.0.as_ref().map_or_else(BTreeMap::new, |tables| {
            tables.lock().unwrap_or_else(|e| e.into_inner()).clone()
        })
    }

    fn add(&self, consumed: &[(&str, f64)], write: bool) {
        let Some(tables) = &self.0 else {
            return;
        };
        let mut tables = tables.lock().unwrap_or_else(|e| e.into_inner());
        for (table, units) in consumed {
            let entry = tables.entry((*table).to_owned()).or_default();
            if write {
                entry.write += units;
            } else {
                entry.read += units;
            }
        }
    }

    /// A read's result, its units counted.
    pub(crate) fn read<O: Consumed, E>(&self, result: Result<O, E>) -> Result<O, E> {
        if let Ok(output) = &result {
            self.add(&output.units(), false);
        }
        result
    }

    /// A write's result, its units counted.
    pub(crate) fn wrote<O: Consumed, E>(&self, result: Result<O, E>) -> Result<O, E> {
        if let Ok(output) = &result {
            self.add(&output.units(), true);
        }
        result
    }

    /// A write to `table` of an item of `item_bytes` whose condition failed: DynamoDB bills it
    /// by the size of the item written.
    pub(crate) fn failed_write(&self, table: &str, item_bytes: usize) {
        self.add(&[(table, write_units(item_bytes))], true);
    }
}

/// A response that reports the capacity it consumed, by table.
pub(crate) trait Consumed {
    fn units(&self) -> Vec<(&str, f64)>;
}

fn total(capacity: Option<&ConsumedCapacity>) -> Vec<(&str, f64)> {
    capacity
        .map(|c| {
            (
                c.table_name().unwrap_or("unknown"),
                c.capacity_units().unwrap_or(0.0),
            )
        })
        .into_iter()
        .collect()
}

macro_rules! consumed_one {
    ($($output:ty),*) => {$(
        impl Consumed for $output {
            fn units(&self) -> Vec<(&str, f64)> {
                total(self.consumed_capacity())
            }
        }
    )*};
}

consumed_one!(
    PutItemOutput,
    UpdateItemOutput,
    GetItemOutput,
    ScanOutput,
    QueryOutput
);

/// Write units for an item of `bytes`: one per KB started.
pub fn write_units(bytes: usize) -> f64 {
    bytes.div_ceil(1024).max(1) as f64
}

/// An item's size as DynamoDB counts it: each attribute's name and value (strings and binaries
/// by length, numbers by digits, maps and lists with 3 bytes plus 1 per element).
pub fn item_size(item: &HashMap<String, AttributeValue>) -> usize {
    item.iter().map(|(k, v)| k.len() + value_size(v)).sum()
}

fn value_size(value: &AttributeValue) -> usize {
    match value {
        AttributeValue::S(s) => s.len(),
        AttributeValue::N(n) => n.trim_start_matches('-').len().div_ceil(2) + 1,
        AttributeValue::B(b) => b.as_ref().len(),
        AttributeValue::Bool(_) | AttributeValue::Null(_) => 1,
        AttributeValue::M(map) => {
            3 + map
                .iter()
                .map(|(k, v)| 1 + k.len() + value_size(v))
                .sum::<usize>()
        }
        AttributeValue::L(list) => 3 + list.iter().map(|v| 1 + value_size(v)).sum::<usize>(),
        AttributeValue::Ss(set) => set.iter().map(String::len).sum(),
        AttributeValue::Ns(set) => set.iter().map(|n| n.len().div_ceil(2) + 1).sum(),
        AttributeValue::Bs(set) => set.iter().map(|b| b.as_ref().len()).sum(),
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_count_names_and_values() {
        let item = HashMap::from([
            ("pk".to_owned(), AttributeValue::S("abc".into())),
            ("n".to_owned(), AttributeValue::N("12345".into())),
            (
                "m".to_owned(),
                AttributeValue::M(HashMap::from([(
                    "k".to_owned(),
                    AttributeValue::S("v".into()),
                )])),
            ),
        ]);
        assert_eq!(item_size(&item), (2 + 3) + (1 + 4) + (1 + 3 + 1 + 1 + 1));
        assert_eq!(write_units(0), 1.0);
        assert_eq!(write_units(1024), 1.0);
        assert_eq!(write_units(1025), 2.0);
    }
}
