"""Write scikit-learn's bundled diabetes data (442 patients, 10 measurements, a disease
progression score one year later) as diabetes.csv beside this file; nothing is downloaded."""

from pathlib import Path

from sklearn.datasets import load_diabetes

if __name__ == "__main__":
    frame = load_diabetes(as_frame=True, scaled=False).frame  # the target column: "target"
    frame = frame.rename(columns={"target": "progression"})
    out = Path(__file__).with_name("diabetes.csv")
    frame.to_csv(out, index=False)
    print(f"wrote {out} ({len(frame)} rows)")
