//! Choosing the compute device: `cpu | cuda | metal | auto` (auto falls back to the CPU with
//! a notice).

use candle_core::Device;

/// What the user asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeviceChoice {
    #[default]
    Auto,
    Cpu,
    Cuda,
    Metal,
}

impl std::str::FromStr for DeviceChoice {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "auto" => Ok(DeviceChoice::Auto),
            "cpu" => Ok(DeviceChoice::Cpu),
            "cuda" => Ok(DeviceChoice::Cuda),
            "metal" => Ok(DeviceChoice::Metal),
            _ => Err(format!("unknown device '{s}' (auto, cpu, cuda, metal)")),
        }
    }
}

/// A device that could not be opened.
#[derive(Debug, thiserror::Error)]
#[error("cannot use the {choice} device: {reason}")]
pub struct DeviceError {
    pub choice: &'static str,
    pub reason: String,
}

/// Opens the chosen device. `Auto` tries CUDA then Metal (when built with them) and falls
/// back to the CPU, returning a notice that says so.
pub fn open(choice: DeviceChoice) -> Result<(Device, Option<String>), DeviceError> {
    match choice {
        DeviceChoice::Cpu => Ok((Device::Cpu, None)),
        DeviceChoice::Cuda => Device::new_cuda(0)
            .map(|d| (d, None))
            .map_err(|e| DeviceError {
                choice: "cuda",
                reason: format!("{e} (build with --features cuda on a machine with an NVIDIA GPU)"),
            }),
        DeviceChoice::Metal => Device::new_metal(0)
            .map(|d| (d, None))
            .map_err(|e| DeviceError {
                choice: "metal",
                reason: format!("{e} (build with --features metal on a Mac)"),
            }),
        DeviceChoice::Auto => {
            if candle_core::utils::cuda_is_available()
                && let Ok(d) = Device::new_cuda(0)
            {
                return Ok((d, None));
            }
            if candle_core::utils::metal_is_available()
                && let Ok(d) = Device::new_metal(0)
            {
                return Ok((d, None));
            }
            let notice = (cfg!(feature = "cuda") || cfg!(feature = "metal"))
                .then(|| "no GPU found: running on the CPU".to_string());
            Ok((Device::Cpu, notice))
        }
    }
}

/// A short description for `run.json` and the status bar.
pub fn describe(device: &Device) -> String {
    match device {
        Device::Cpu => format!("cpu ({} threads)", rayon::current_num_threads()),
        Device::Cuda(_) => "cuda:0".into(),
        Device::Metal(_) => "metal:0".into(),
    }
}
