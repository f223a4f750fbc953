//! Loss models: independent random loss and the Gilbert-Elliott two-state
//! model (bursty loss), with the same parameters as Linux netem's `gemodel`.

use fastrand::Rng;

/// Which packets a link loses.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum LossModel {
    /// No random loss.
    None,
    /// Each packet is lost independently with this probability.
    Random(f64),
    /// Gilbert-Elliott: a GOOD and a BAD state; `p` = P(GOOD -> BAD),
    /// `r` = P(BAD -> GOOD) per packet, `loss_bad` (netem's 1-h) and
    /// `loss_good` (netem's 1-k) are the loss probabilities in each state.
    GilbertElliott {
        /// Probability of moving GOOD -> BAD at each packet.
        p: f64,
        /// Probability of moving BAD -> GOOD at each packet.
        r: f64,
        /// Loss probability in the BAD state (netem's `1-h`).
        loss_bad: f64,
        /// Loss probability in the GOOD state (netem's `1-k`).
        loss_good: f64,
    },
}

impl LossModel {
    /// A Gilbert-Elliott model with a mean loss rate `mean` and a mean burst
    /// length of `burst` packets (all packets lost in BAD, none in GOOD).
    pub fn bursty(mean: f64, burst: f64) -> LossModel {
        let burst = burst.max(1.0);
        let r = 1.0 / burst;
        let mean = mean.clamp(0.0, 0.99);
        // Stationary P(BAD) = p / (p + r) = mean.
        let p = mean * r / (1.0 - mean);
        LossModel::GilbertElliott {
            p,
            r,
            loss_bad: 1.0,
            loss_good: 0.0,
        }
    }

    /// The long-run fraction of packets this model loses.
    pub fn mean_loss(&self) -> f64 {
        match *self {
            LossModel::None => 0.0,
            LossModel::Random(p) => p,
            LossModel::GilbertElliott {
                p,
                r,
                loss_bad,
                loss_good,
            } => {
                if p + r <= 0.0 {
                    return loss_good;
                }
                let bad = p / (p + r);
                bad * loss_bad + (1.0 - bad) * loss_good
            }
        }
    }
}

/// The state a loss model carries from packet to packet.
#[derive(Debug, Clone)]
pub struct LossState {
    model: LossModel,
    in_bad: bool,
}

impl LossState {
    /// Fresh state (GOOD) for `model`.
    pub fn new(model: LossModel) -> Self {
        LossState {
            model,
            in_bad: false,
        }
    }

    /// Decide whether the next packet is lost, advancing the model.
    pub fn lose(&mut self, rng: &mut Rng) -> bool {
        match self.model {
            LossModel::None => false,
            LossModel::Random(p) => p > 0.0 && rng.f64() < p,
            LossModel::GilbertElliott {
                p,
                r,
                loss_bad,
                loss_good,
            } => {
                if self.in_bad {
                    if rng.f64() < r {
                        self.in_bad = false;
                    }
                } else if rng.f64() < p {
                    self.in_bad = true;
                }
                let q = if self.in_bad { loss_bad } else { loss_good };
                q > 0.0 && rng.f64() < q
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(model: LossModel, n: usize) -> (f64, f64) {
        let mut st = LossState::new(model);
        let mut rng = Rng::with_seed(7);
        let (mut lost, mut bursts, mut prev) = (0usize, 0usize, false);
        for _ in 0..n {
            let l = st.lose(&mut rng);
            if l {
                lost += 1;
                if !prev {
                    bursts += 1;
                }
            }
            prev = l;
        }
        let mean_burst = if bursts == 0 {
            0.0
        } else {
            lost as f64 / bursts as f64
        };
        (lost as f64 / n as f64, mean_burst)
    }

    #[test]
    fn no_loss_loses_nothing() {
        assert_eq!(run(LossModel::None, 10_000).0, 0.0);
    }

    #[test]
    fn random_loss_rate_matches() {
        let (rate, burst) = run(LossModel::Random(0.01), 1_000_000);
        assert!((rate - 0.01).abs() < 0.0005, "rate {rate}");
        assert!(burst < 1.1, "independent loss has bursts ~1, got {burst}");
    }

    #[test]
    fn bursty_loss_matches_mean_and_burst_length() {
        let m = LossModel::bursty(0.05, 4.0);
        assert!((m.mean_loss() - 0.05).abs() < 1e-9);
        let (rate, burst) = run(m, 2_000_000);
        assert!((rate - 0.05).abs() < 0.002, "rate {rate}");
        assert!((burst - 4.0).abs() < 0.3, "burst {burst}");
    }

    #[test]
    fn gilbert_elliott_mean_formula() {
        let m = LossModel::GilbertElliott {
            p: 0.01,
            r: 0.3,
            loss_bad: 0.5,
            loss_good: 0.001,
        };
        let (rate, _) = run(m, 2_000_000);
        assert!(
            (rate - m.mean_loss()).abs() < 0.001,
            "{rate} vs {}",
            m.mean_loss()
        );
    }
}
